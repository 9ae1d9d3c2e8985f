//! Environment overrides: `ACME_EDGE_<SECTION>_<KEY>` (upper case) sets any key of any
//! section, e.g. `ACME_EDGE_ADMIN_TOKEN`, `ACME_EDGE_STORAGE_URL`; a value from the
//! environment wins over the file.
//!
//! Nothing here lists keys: a section's keys are the field names its serde `Deserialize`
//! knows (`keys_of`), so a new key has its override the moment it exists. Nor does
//! anything list types: a value is read as whatever its key accepts (`value`).

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// Where the environment overrides come from: `std::env::var` in the service, a closure in
/// tests.
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What every override's name starts with.
pub const PREFIX: &str = "ACME_EDGE_";

/// The variable that overrides `key` of `section`: `ACME_EDGE_ACME_RETRY_BASE_SECS`; a
/// section inside another (`acme.limits`) joins the names with `_`
/// (`ACME_EDGE_ACME_LIMITS_NEW_ORDERS`).
pub fn name(section: &str, key: &str) -> String {
    format!("{PREFIX}{section}_{key}")
        .replace('.', "_")
        .to_ascii_uppercase()
}

/// Set in `table`, the file's section `section` of type `T`, every key the environment
/// overrides.
pub(super) fn apply<T: DeserializeOwned>(section: &str, table: &mut toml::Table, env: Env<'_>) {
    for key in keys_of::<T>() {
        if let Some(raw) = env(&name(section, key)) {
            table.insert((*key).to_owned(), value::<T>(key, &raw));
        }
    }
}

/// An environment value (always text) as the TOML value `key` of `T` accepts: the text
/// itself for a string key (a token of digits stays a string), else a scalar (`true`, `50`),
/// else a comma-separated list (`acme.contact`). When none fits, the scalar, for
/// deserialization to report under the key.
fn value<T: DeserializeOwned>(key: &str, raw: &str) -> toml::Value {
    let text = toml::Value::String(raw.to_owned());
    let scalar = scalar(raw);
    let list = toml::Value::Array(
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| toml::Value::String(s.to_owned()))
            .collect(),
    );
    [text, scalar.clone(), list]
        .into_iter()
        .find(|candidate| T::deserialize(single(key, candidate.clone())).is_ok())
        .unwrap_or(scalar)
}

fn scalar(raw: &str) -> toml::Value {
    let raw = raw.trim();
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    toml::Value::String(raw.to_owned())
}

/// The keys of a section, as its derived `Deserialize` names them: it hands its field names
/// to `deserialize_struct`, and this deserializer only listens, then stops.
pub(super) fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("a section is a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("only the field names were wanted"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// A section holding only `key`.
pub(super) fn single(key: &str, value: toml::Value) -> toml::Value {
    let mut table = toml::Table::new();
    table.insert(key.to_owned(), value);
    toml::Value::Table(table)
}

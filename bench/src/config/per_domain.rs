//! The old way's configuration: one Envoy virtual host per customer domain, each with a route
//! answering that domain's ACME challenge, in front of the edge's own catch-all host.
//!
//! The base is the edge bootstrap as `acme-edge envoy-config` renders it, without the filter
//! and without the HTTPS listener: only the challenge routing differs from acme-edge's, and
//! the old way's certificates (a TLS filter chain per domain) are left out, which can only
//! flatter it.
//!
//! **How a domain is added.** The plain-HTTP listener takes its route configuration over RDS
//! from a file (`path_config_source` with a `watched_directory`): a new configuration is
//! written beside it and renamed over it, Envoy sees the move and loads the whole file again,
//! with no restart and no control plane to run. It is the cheapest realistic mechanism: a
//! hot restart would load the whole bootstrap into a second process, and a gRPC control plane
//! sends the same whole route configuration (RDS is not incremental; VHDS is, but needs a
//! delta gRPC control plane of its own).
//!
//! **[`Format`].** The files are compact JSON, or block YAML as `acme-edge envoy-config`
//! writes (`acme_edge_envoy_bootstrap::yaml`). Envoy reads YAML by converting it to JSON
//! first, so JSON is the old way's best case and YAML what a configuration written for
//! people costs.
//!
//! Each per-domain host's challenge route answers with the key authorization itself (a direct
//! response), so the old way needs no backend at all; its other paths go where the catch-all
//! host sends them.

use std::path::{Path, PathBuf};

use acme_edge_envoy_bootstrap::yaml;
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

/// The bootstrap's file name, before the extension (Envoy takes the format from it).
const BOOTSTRAP_FILE: &str = "envoy";
/// The route configuration's file name, before the extension, in the watched directory.
const ROUTE_FILE: &str = "routes";
/// Where a new route configuration is written before it is renamed over the route file.
const NEXT_SUFFIX: &str = ".next";
const ROUTE_CONFIGURATION_TYPE: &str =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// The name of the listener whose routes move to the file (the renderer's).
const HTTP_LISTENER: &str = "http";
const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
/// A JWK thumbprint: 43 base64url characters, as in every key authorization.
const THUMBPRINT: &str = "nU0yxpR7LvJ3aK9qWcT2mB5sE8dF1gH4jZ6kX0oP7rA";

/// How the old way's files are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// The file extension, by which Envoy chooses its parser.
    fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }

    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        }
    }

    fn write(self, value: &Value) -> Result<Vec<u8>> {
        Ok(match self {
            Format::Json => serde_json::to_vec(value)?,
            Format::Yaml => yaml::to_yaml(value).into_bytes(),
        })
    }
}

/// One customer domain and its challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub token: String,
    pub key_authorization: String,
}

impl Domain {
    /// The `i`-th domain of a run (tokens have the 43 characters of an ACME token).
    pub fn nth(i: usize) -> Domain {
        let token = format!("tok{i:040}");
        Domain {
            name: format!("d{i:06}.customer.example"),
            key_authorization: format!("{token}.{THUMBPRINT}"),
            token,
        }
    }

    /// The path the CA fetches.
    pub fn path(&self) -> String {
        format!("{CHALLENGE_PREFIX}{}", self.token)
    }
}

/// The old way's files in one directory: the bootstrap, and the route file Envoy watches.
#[derive(Debug)]
pub struct PerDomain {
    dir: PathBuf,
    format: Format,
    /// The edge's route configuration (its catch-all host), which the domains' hosts precede.
    routes: Value,
    bootstrap_bytes: u64,
}

impl PerDomain {
    /// Turn the rendered edge bootstrap `base` into the old way's, written into `dir`: the
    /// plain-HTTP listener's inline route configuration becomes RDS from a watched file.
    pub fn write(mut base: Value, dir: &Path, format: Format) -> Result<PerDomain> {
        let manager = http_connection_manager(&mut base)?;
        let routes = manager
            .remove("route_config")
            .context("the HTTP listener has no inline route_config")?;
        let name = routes["name"]
            .as_str()
            .context("the route configuration has no name")?;
        let rds = rds(name, &file(dir, ROUTE_FILE, format), dir)?;
        manager.insert("rds".to_owned(), rds);
        let text = format.write(&base)?;
        let path = file(dir, BOOTSTRAP_FILE, format);
        std::fs::write(&path, &text).with_context(|| format!("write {}", path.display()))?;
        Ok(PerDomain {
            dir: dir.to_owned(),
            format,
            routes,
            bootstrap_bytes: text.len() as u64,
        })
    }

    /// The bootstrap to start Envoy with.
    pub fn bootstrap_path(&self) -> PathBuf {
        file(&self.dir, BOOTSTRAP_FILE, self.format)
    }

    /// The route file Envoy watches.
    fn route_path(&self) -> PathBuf {
        file(&self.dir, ROUTE_FILE, self.format)
    }

    /// The bootstrap's size in bytes (without the route file).
    pub fn bootstrap_bytes(&self) -> u64 {
        self.bootstrap_bytes
    }

    /// The route file for domains `0..count`, as Envoy reads it (a discovery response).
    pub fn render_routes(&self, count: usize) -> Result<Vec<u8>> {
        let mut routes = self.routes.clone();
        let hosts = routes["virtual_hosts"]
            .as_array_mut()
            .context("the route configuration has no virtual_hosts")?;
        let catch_all = catch_all_route(hosts)?;
        let own = std::mem::take(hosts);
        hosts.extend((0..count).map(|i| virtual_host(&Domain::nth(i), &catch_all)));
        hosts.extend(own);
        routes["@type"] = json!(ROUTE_CONFIGURATION_TYPE);
        let response = json!({"version_info": count.to_string(), "resources": [routes]});
        self.format.write(&response)
    }

    /// Put a rendered route file in place: written beside the watched one, then renamed over
    /// it (Envoy reacts to the move, and never reads a half-written file).
    pub fn install_routes(&self, text: &[u8]) -> Result<()> {
        let path = self.route_path();
        let mut next = path.clone().into_os_string();
        next.push(NEXT_SUFFIX);
        std::fs::write(&next, text).context("write the next route file")?;
        std::fs::rename(&next, &path).context("rename the route file")
    }
}

/// `dir/name.extension`.
fn file(dir: &Path, name: &str, format: Format) -> PathBuf {
    dir.join(format!("{name}.{}", format.extension()))
}

/// The `rds` of the HTTP connection manager: the route file `path`, its directory `dir`
/// watched.
fn rds(route_config_name: &str, path: &Path, dir: &Path) -> Result<Value> {
    let utf8 = |path: &Path| -> Result<String> {
        path.to_str()
            .map(str::to_owned)
            .with_context(|| format!("{} is not UTF-8", path.display()))
    };
    Ok(json!({
        "route_config_name": route_config_name,
        "config_source": {
            "resource_api_version": "V3",
            "path_config_source": {
                "path": utf8(path)?,
                "watched_directory": {"path": utf8(dir)?},
            },
        },
    }))
}

/// The plain-HTTP listener's connection manager settings in a rendered bootstrap.
fn http_connection_manager(bootstrap: &mut Value) -> Result<&mut Map<String, Value>> {
    bootstrap["static_resources"]["listeners"]
        .as_array_mut()
        .context("the bootstrap has no listeners")?
        .iter_mut()
        .find(|listener| listener["name"] == HTTP_LISTENER)
        .context("the bootstrap has no HTTP listener")?
        .pointer_mut("/filter_chains/0/filters/0/typed_config")
        .and_then(Value::as_object_mut)
        .context("the HTTP listener has no connection manager")
}

/// The last route of the catch-all host: where a domain's other paths go.
fn catch_all_route(hosts: &[Value]) -> Result<Value> {
    hosts
        .iter()
        .find(|host| host["domains"] == json!(["*"]))
        .and_then(|host| host["routes"].as_array()?.last().cloned())
        .context("the route configuration has no catch-all host")
}

/// `domain`'s own host: its challenge answered, everything else as the catch-all does.
fn virtual_host(domain: &Domain, catch_all: &Value) -> Value {
    json!({
        "name": domain.name,
        "domains": [domain.name],
        "routes": [
            {
                "match": {"path": domain.path()},
                "direct_response": {
                    "status": 200,
                    "body": {"inline_string": domain.key_authorization},
                },
            },
            catch_all,
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({
            "static_resources": {"listeners": [{
                "name": "http",
                "filter_chains": [{"filters": [{"typed_config": {
                    "stat_prefix": "edge_http",
                    "route_config": {
                        "name": "edge_routes",
                        "virtual_hosts": [{
                            "name": "all",
                            "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}],
                        }],
                    },
                }}]}],
            }]},
        })
    }

    #[test]
    fn domains_are_distinct_and_tokens_have_an_acme_tokens_length() {
        let (a, b) = (Domain::nth(0), Domain::nth(99_999));
        assert_ne!(a.name, b.name);
        assert_eq!(a.token.len(), 43);
        assert_eq!(THUMBPRINT.len(), 43);
        assert_eq!(b.path(), format!("/.well-known/acme-challenge/{}", b.token));
        assert!(b.key_authorization.starts_with(&format!("{}.", b.token)));
    }

    #[test]
    fn routes_move_to_a_watched_file_with_one_host_per_domain() {
        let dir = tempfile::tempdir().unwrap();
        let files = PerDomain::write(base(), dir.path(), Format::Json).unwrap();
        assert_eq!(files.bootstrap_path(), dir.path().join("envoy.json"));
        let bootstrap: Value =
            serde_json::from_slice(&std::fs::read(files.bootstrap_path()).unwrap()).unwrap();
        let manager = &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
            [0]["typed_config"];
        assert!(manager.get("route_config").is_none());
        assert_eq!(manager["rds"]["route_config_name"], "edge_routes");
        let source = &manager["rds"]["config_source"]["path_config_source"];
        assert_eq!(source["path"], json!(dir.path().join("routes.json")));
        assert_eq!(source["watched_directory"]["path"], json!(dir.path()));

        let text = files.render_routes(3).unwrap();
        files.install_routes(&text).unwrap();
        let response: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("routes.json")).unwrap())
                .unwrap();
        let routes = &response["resources"][0];
        assert_eq!(routes["@type"], ROUTE_CONFIGURATION_TYPE);
        let hosts = routes["virtual_hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 4);
        let second = Domain::nth(1);
        assert_eq!(hosts[1]["domains"], json!([second.name]));
        assert_eq!(hosts[1]["routes"][0]["match"]["path"], second.path());
        assert_eq!(
            hosts[1]["routes"][0]["direct_response"]["body"]["inline_string"],
            second.key_authorization
        );
        assert_eq!(hosts[1]["routes"][1]["match"]["prefix"], "/");
        assert_eq!(hosts[3]["domains"], json!(["*"]));
        assert!(!dir.path().join("routes.json.next").exists());
    }

    #[test]
    fn yaml_files_carry_the_same_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let files = PerDomain::write(base(), dir.path(), Format::Yaml).unwrap();
        let bootstrap = std::fs::read_to_string(dir.path().join("envoy.yaml")).unwrap();
        assert!(
            bootstrap.contains("route_config_name: edge_routes"),
            "{bootstrap}"
        );
        assert_eq!(files.bootstrap_bytes(), bootstrap.len() as u64);
        let routes = String::from_utf8(files.render_routes(2).unwrap()).unwrap();
        let first = Domain::nth(0);
        assert!(routes.contains(&format!("- {}", first.name)), "{routes}");
        assert!(routes.contains(&first.key_authorization), "{routes}");
        assert!(routes.contains("version_info: \"2\""), "{routes}");
    }
}

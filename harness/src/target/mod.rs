//! Where the brokers are and how to control them, kept apart from workloads so one workload runs
//! against local processes, docker containers or a managed service unchanged.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetProfile {
    pub name: String,
    pub kafka: Option<KafkaTarget>,
    pub rabbitmq: Option<RabbitTarget>,
    pub sqs: Option<SqsTarget>,
    /// Directory control commands run in (the profile file's directory); not part of the file.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Shell commands that broker faults run; each must return once the action is done.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub kill: Option<String>,
    pub pause: Option<String>,
    pub resume: Option<String>,
    pub start: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTarget {
    /// bootstrap.servers, e.g. 127.0.0.1:9092
    pub bootstrap: String,
    /// What the broker is, for reports: e.g. "Kafka protocol (tansu 0.6.0)" or "Apache Kafka 3.9".
    pub product: String,
    #[serde(default)]
    pub control: Control,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitTarget {
    pub url: String,
    pub product: String,
    #[serde(default)]
    pub control: Control,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqsTarget {
    /// Endpoint URL; omit for AWS's regional endpoint.
    pub endpoint: Option<String>,
    pub region: String,
    /// Static credentials (LocalStack accepts any); otherwise AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub product: String,
    #[serde(default)]
    pub control: Control,
}

impl TargetProfile {
    pub fn load(path: &Path) -> Result<TargetProfile> {
        let src = std::fs::read_to_string(path)
            .with_context(|| format!("reading target profile {}", path.display()))?;
        let mut t: TargetProfile = serde_saphyr::from_str(&src).map_err(|e| {
            let (l, c, message) = crate::workload::yaml_error(&e);
            anyhow::anyhow!("{}:{l}:{c}: {message}", path.display())
        })?;
        t.dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Ok(t)
    }
}

/// One broker's section of a target profile, as a run uses it. Each broker's folder in `driver/`
/// implements it for its own section type.
pub trait Section {
    /// The shell commands its broker faults run.
    fn control(&self) -> &Control;
    /// Where the broker listens, for messages (passwords hidden).
    fn address(&self) -> String;
    /// host:port the fault proxy forwards to.
    fn upstream(&self) -> Result<String>;
    /// Send this broker's clients to `proxy` instead.
    fn route_through(&mut self, proxy: std::net::SocketAddr) -> Result<()>;
}

/// `u` with its host and port replaced by `proxy`'s, written as the user wrote it otherwise.
pub fn with_address(u: &str, proxy: std::net::SocketAddr) -> Result<String> {
    let mut url = url::Url::parse(u).with_context(|| format!("parsing {}", redact_url(u)))?;
    url.set_ip_host(proxy.ip())
        .map_err(|_| anyhow::anyhow!("cannot set the host of {}", redact_url(u)))?;
    url.set_port(Some(proxy.port()))
        .map_err(|_| anyhow::anyhow!("cannot set the port of {}", redact_url(u)))?;
    let out = url.to_string();
    // Url adds a root path; keep the address as the user wrote it.
    Ok(if u.ends_with('/') {
        out
    } else {
        out.trim_end_matches('/').to_string()
    })
}

/// host:port of a URL that must use the plain (not TLS) `scheme`, for the fault proxy.
pub fn plain_url_authority(u: &str, scheme: &str, default_port: u16) -> Result<String> {
    let url = url::Url::parse(u).with_context(|| format!("parsing {}", redact_url(u)))?;
    if url.scheme() != scheme {
        anyhow::bail!(
            "network faults need a plain {scheme}:// address, not {}: the proxy does not terminate TLS",
            redact_url(u)
        );
    }
    let host = url
        .host_str()
        .with_context(|| format!("{} has no host", redact_url(u)))?;
    Ok(format!("{host}:{}", url.port().unwrap_or(default_port)))
}

/// Hide the password in an AMQP URL before it goes into a message or a report.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact_url("amqp://host:5672"), "amqp://host:5672");
    }
}

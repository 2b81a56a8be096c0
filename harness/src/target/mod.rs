//! Where the brokers are and how to control them, kept apart from workloads so one workload runs
//! against local processes, docker containers or a managed service unchanged.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::workload::BrokerKind;

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
            let (l, c) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            anyhow::anyhow!("{}:{l}:{c}: {}", path.display(), e.without_snippet())
        })?;
        t.dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Ok(t)
    }

    /// Fail with a clear message when the workload needs a broker this profile does not describe.
    pub fn require(&self, broker: BrokerKind) -> Result<()> {
        let present = match broker {
            BrokerKind::Kafka => self.kafka.is_some(),
            BrokerKind::Rabbitmq => self.rabbitmq.is_some(),
            BrokerKind::Sqs => self.sqs.is_some(),
        };
        anyhow::ensure!(
            present,
            "target profile `{}` has no `{broker}` section",
            self.name
        );
        Ok(())
    }

    pub fn control(&self, broker: BrokerKind) -> Option<&Control> {
        match broker {
            BrokerKind::Kafka => self.kafka.as_ref().map(|k| &k.control),
            BrokerKind::Rabbitmq => self.rabbitmq.as_ref().map(|r| &r.control),
            BrokerKind::Sqs => self.sqs.as_ref().map(|s| &s.control),
        }
    }

    /// Where the broker listens, for error messages.
    pub fn address(&self, broker: BrokerKind) -> String {
        match broker {
            BrokerKind::Kafka => self.kafka.as_ref().map(|k| k.bootstrap.clone()),
            BrokerKind::Rabbitmq => self.rabbitmq.as_ref().map(|r| redact_url(&r.url)),
            BrokerKind::Sqs => self.sqs.as_ref().map(|s| {
                s.endpoint
                    .clone()
                    .unwrap_or_else(|| format!("AWS {}", s.region))
            }),
        }
        .unwrap_or_else(|| "(not configured)".into())
    }
}

impl TargetProfile {
    /// host:port the fault proxy forwards to.
    pub fn upstream(&self, broker: BrokerKind) -> Result<String> {
        let none = || anyhow::anyhow!("the target profile has no {broker} entry");
        match broker {
            BrokerKind::Kafka => {
                let k = self.kafka.as_ref().ok_or_else(none)?;
                let first = k.bootstrap.split(',').next().unwrap_or_default().trim();
                Ok(first.to_string())
            }
            BrokerKind::Rabbitmq => {
                let r = self.rabbitmq.as_ref().ok_or_else(none)?;
                plain_url_authority(&r.url, "amqp", 5672)
            }
            BrokerKind::Sqs => {
                let s = self.sqs.as_ref().ok_or_else(none)?;
                let ep = s.endpoint.as_deref().context(
                    "network faults need the sqs target's `endpoint` (the proxy cannot stand in for AWS's TLS endpoint)",
                )?;
                plain_url_authority(ep, "http", 80)
            }
        }
    }

    /// The same profile with `broker`'s clients sent to `proxy` instead.
    pub fn through_proxy(&self, broker: BrokerKind, proxy: std::net::SocketAddr) -> Result<Self> {
        let mut t = self.clone();
        let set = |u: &str| -> Result<String> {
            let mut url =
                url::Url::parse(u).with_context(|| format!("parsing {}", redact_url(u)))?;
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
        };
        match broker {
            BrokerKind::Kafka => {
                if let Some(k) = t.kafka.as_mut() {
                    k.bootstrap = proxy.to_string();
                }
            }
            BrokerKind::Rabbitmq => {
                if let Some(r) = t.rabbitmq.as_mut() {
                    r.url = set(&r.url)?;
                }
            }
            BrokerKind::Sqs => {
                if let Some(s) = t.sqs.as_mut() {
                    s.endpoint = s.endpoint.as_deref().map(set).transpose()?;
                }
            }
        }
        Ok(t)
    }
}

/// host:port of a URL that must use the plain (not TLS) `scheme`, for the fault proxy.
fn plain_url_authority(u: &str, scheme: &str, default_port: u16) -> Result<String> {
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

    #[test]
    fn shipped_profiles_parse_and_agree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets");
        let local = TargetProfile::load(&root.join("local.yaml")).unwrap();
        let docker = TargetProfile::load(&root.join("docker.yaml")).unwrap();
        for b in [BrokerKind::Kafka, BrokerKind::Rabbitmq, BrokerKind::Sqs] {
            local.require(b).unwrap();
            docker.require(b).unwrap();
            // Same ports on both, so a workload's results compare across profiles.
            assert_eq!(local.address(b), docker.address(b), "{b}");
            for p in [&local, &docker] {
                let c = p.control(b).unwrap();
                assert!(
                    c.kill.is_some()
                        && c.pause.is_some()
                        && c.resume.is_some()
                        && c.start.is_some(),
                    "{} {b}",
                    p.name
                );
            }
        }
    }
}

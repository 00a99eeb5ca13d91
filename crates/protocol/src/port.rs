//! `Port`: a port number and its transport protocol, written `25/tcp`, `53/udp` or `80`, as roles
//! declare them and security group rules carry them.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

/// A port and protocol, written `25/tcp`, `53/udp` or just `80` (tcp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub number: u16,
    pub proto: Proto,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        write!(f, "{}/{}", self.number, proto)
    }
}

impl Port {
    pub fn parse(text: &str) -> Result<Port, String> {
        let (num, proto) = match text.split_once('/') {
            Some((n, p)) => (n, p),
            None => (text, "tcp"),
        };
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            other => {
                return Err(format!(
                    "unknown protocol `{other}` in port `{text}`: use tcp or udp"
                ))
            }
        };
        match num.trim().parse::<u16>() {
            Ok(n) if n > 0 => Ok(Port { number: n, proto }),
            _ => Err(format!(
                "invalid port `{text}`: write a number from 1 to 65535, e.g. `25/tcp`"
            )),
        }
    }
}

impl Serialize for Port {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port like `25/tcp`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                Port::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_with_and_without_protocol() {
        assert_eq!(Port::parse("25/tcp").unwrap().to_string(), "25/tcp");
        assert_eq!(Port::parse("53/udp").unwrap().proto, Proto::Udp);
        assert_eq!(Port::parse("80").unwrap().to_string(), "80/tcp");
        assert!(Port::parse("0/tcp").is_err());
        assert!(Port::parse("70000/tcp").is_err());
        assert!(Port::parse("25/sctp")
            .unwrap_err()
            .contains("unknown protocol"));
    }
}

//! The version document of `GET /`.

use serde::{Deserialize, Serialize};

use crate::Link;

/// API versions this server speaks, with Octavia's release timestamps; the last is CURRENT.
pub const VERSIONS: &[(&str, &str)] = &[
    ("v2.0", "2016-12-11T00:00:00Z"),
    ("v2.1", "2018-04-20T00:00:00Z"),
    ("v2.2", "2018-07-31T00:00:00Z"),
    ("v2.3", "2018-12-18T00:00:00Z"),
    ("v2.4", "2018-12-19T00:00:00Z"),
    ("v2.5", "2019-01-21T00:00:00Z"),
    ("v2.6", "2019-01-25T00:00:00Z"),
    ("v2.7", "2018-01-25T12:00:00Z"),
    ("v2.8", "2019-02-12T00:00:00Z"),
    ("v2.9", "2019-03-04T00:00:00Z"),
    ("v2.10", "2019-03-05T00:00:00Z"),
    ("v2.11", "2019-06-24T00:00:00Z"),
    ("v2.12", "2019-09-11T00:00:00Z"),
    ("v2.13", "2019-09-13T00:00:00Z"),
    ("v2.14", "2019-11-10T00:00:00Z"),
    ("v2.15", "2020-03-10T00:00:00Z"),
    ("v2.16", "2020-03-15T00:00:00Z"),
    ("v2.17", "2020-04-29T00:00:00Z"),
    ("v2.18", "2020-04-29T01:00:00Z"),
    ("v2.19", "2020-05-12T00:00:00Z"),
    ("v2.20", "2020-08-02T00:00:00Z"),
    ("v2.21", "2020-09-03T00:00:00Z"),
    ("v2.22", "2020-09-04T00:00:00Z"),
    ("v2.23", "2020-09-07T00:00:00Z"),
    ("v2.24", "2020-10-15T00:00:00Z"),
    ("v2.25", "2021-10-02T00:00:00Z"),
    ("v2.26", "2022-08-29T00:00:00Z"),
    ("v2.27", "2023-05-05T00:00:00Z"),
    ("v2.28", "2023-11-08T00:00:00Z"),
    ("v2.29", "2024-10-15T00:00:00Z"),
    ("v2.30", "2025-02-26T00:00:00Z"),
];

/// One entry of the version document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub id: String,
    pub status: String,
    pub updated: String,
    pub links: Vec<Link>,
}

/// `{"versions": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionsResponse {
    pub versions: Vec<VersionEntry>,
}

/// The document for a request whose URL (without query) is `base`; every href is
/// `<base>/v2` with exactly one slash between.
pub fn versions(base: &str) -> VersionsResponse {
    let href = format!("{}/v2", base.trim_end_matches('/'));
    let last = VERSIONS.len() - 1;
    VersionsResponse {
        versions: VERSIONS
            .iter()
            .enumerate()
            .map(|(i, (id, updated))| VersionEntry {
                id: (*id).to_string(),
                status: if i == last { "CURRENT" } else { "SUPPORTED" }.to_string(),
                updated: (*updated).to_string(),
                links: vec![Link {
                    href: href.clone(),
                    rel: "self".into(),
                }],
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_is_current_and_links_point_at_v2() {
        let v = versions("http://h:9876/");
        assert_eq!(v.versions.len(), 31);
        assert_eq!(v.versions[0].id, "v2.0");
        assert_eq!(v.versions[0].status, "SUPPORTED");
        assert_eq!(v.versions[30].status, "CURRENT");
        assert_eq!(v.versions[5].links[0].href, "http://h:9876/v2");
    }
}

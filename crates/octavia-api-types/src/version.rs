//! The version document of `GET /`.

use serde::{Deserialize, Serialize};

use crate::Link;

/// API versions this server advertises, with Octavia's release timestamps; the last is
/// CURRENT. Only versions whose every feature works are listed: v2.4 amphora statistics,
/// v2.5 tags, v2.6 flavors, v2.7 amphora configuration update. The next, v2.8 (TLS client
/// authentication), needs TERMINATED_HTTPS listeners, which the amphora provider does not
/// serve yet (501); later versions are listed once everything up to them works.
pub const VERSIONS: &[(&str, &str)] = &[
    ("v2.0", "2016-12-11T00:00:00Z"),
    ("v2.1", "2018-04-20T00:00:00Z"),
    ("v2.2", "2018-07-31T00:00:00Z"),
    ("v2.3", "2018-12-18T00:00:00Z"),
    ("v2.4", "2018-12-19T00:00:00Z"),
    ("v2.5", "2019-01-21T00:00:00Z"),
    ("v2.6", "2019-01-25T00:00:00Z"),
    ("v2.7", "2018-01-25T12:00:00Z"),
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
        assert_eq!(v.versions.len(), VERSIONS.len());
        assert_eq!(v.versions[0].id, "v2.0");
        assert_eq!(v.versions[0].status, "SUPPORTED");
        let last = v.versions.last().unwrap();
        assert_eq!(
            (last.id.as_str(), last.status.as_str()),
            ("v2.7", "CURRENT")
        );
        assert_eq!(v.versions[5].links[0].href, "http://h:9876/v2");
    }
}

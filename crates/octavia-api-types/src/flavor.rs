//! Flavor and flavor profile request and response bodies (`/v2/lbaas/flavors`,
//! `/v2/lbaas/flavorprofiles`). A profile's `flavor_data` is checked against its provider
//! with [`crate::provider::validate_flavor_data`].

use octavia_model::{Flavor, FlavorId, FlavorProfile, FlavorProfileId};
use serde::{Deserialize, Serialize};

use crate::common::{check_len, check_opt_len, check_uuid, mandatory, nullable, or_empty};
use crate::TypesError;

/// Longest `flavor_data` / `availability_zone_data` text.
pub const MAX_PROFILE_DATA: usize = 4096;

/// `{"flavor": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorPostBody {
    pub flavor: FlavorPost,
}

/// Body of `POST /v2/lbaas/flavors`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorPost {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub flavor_profile_id: Option<String>,
}

impl FlavorPost {
    /// Apply the field rules (name and profile mandatory, lengths, the profile id a UUID) and
    /// build the new flavor (enabled unless the body says otherwise).
    pub fn into_model(self) -> Result<Flavor, TypesError> {
        let name = mandatory("name", self.name)?;
        check_len("name", &name, 255)?;
        check_opt_len("description", self.description.as_deref(), 255)?;
        let profile = mandatory("flavor_profile_id", self.flavor_profile_id)?;
        let profile = check_uuid("flavor_profile_id", &profile)?;
        Ok(Flavor {
            id: FlavorId::new(),
            name,
            description: self.description,
            enabled: self.enabled.unwrap_or(true),
            flavor_profile_id: FlavorProfileId(profile),
        })
    }
}

/// `{"flavor": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorPutBody {
    pub flavor: FlavorPut,
}

/// Body of `PUT /v2/lbaas/flavors/{id}`: name, description, enabled.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorPut {
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

impl FlavorPut {
    /// Apply the field rules and patch `flavor` with the fields present (a flavor keeps a
    /// name: `null` is refused).
    pub fn apply(self, flavor: &mut Flavor) -> Result<(), TypesError> {
        if let Some(name) = self.name {
            let name = mandatory("name", name)?;
            check_len("name", &name, 255)?;
            flavor.name = name;
        }
        if let Some(description) = self.description {
            check_opt_len("description", description.as_deref(), 255)?;
            flavor.description = description;
        }
        if let Some(enabled) = self.enabled {
            flavor.enabled = enabled;
        }
        Ok(())
    }
}

/// A flavor as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorResponse {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub flavor_profile_id: String,
}

impl From<&Flavor> for FlavorResponse {
    fn from(f: &Flavor) -> Self {
        Self {
            id: f.id.to_string(),
            name: f.name.clone(),
            description: or_empty(&f.description),
            enabled: f.enabled,
            flavor_profile_id: f.flavor_profile_id.to_string(),
        }
    }
}

/// `{"flavorprofile": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorProfilePostBody {
    pub flavorprofile: FlavorProfilePost,
}

/// Body of `POST /v2/lbaas/flavorprofiles`: every field mandatory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorProfilePost {
    pub name: Option<String>,
    pub provider_name: Option<String>,
    pub flavor_data: Option<String>,
}

impl FlavorProfilePost {
    /// Apply the field rules (presence, lengths) and build the new profile. Whether its
    /// provider takes its data is [`crate::provider::validate_flavor_data`]'s to say.
    pub fn into_model(self) -> Result<FlavorProfile, TypesError> {
        let name = mandatory("name", self.name)?;
        let provider_name = mandatory("provider_name", self.provider_name)?;
        let flavor_data = mandatory("flavor_data", self.flavor_data)?;
        check_profile_fields(&name, &provider_name, "flavor_data", &flavor_data)?;
        Ok(FlavorProfile {
            id: FlavorProfileId::new(),
            name,
            provider_name,
            flavor_data,
        })
    }
}

/// The length rules of a profile's fields (both kinds of profile).
pub(crate) fn check_profile_fields(
    name: &str,
    provider_name: &str,
    data_field: &str,
    data: &str,
) -> Result<(), TypesError> {
    check_len("name", name, 255)?;
    check_len("provider_name", provider_name, 255)?;
    check_len(data_field, data, MAX_PROFILE_DATA)
}

/// `{"flavorprofile": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorProfilePutBody {
    pub flavorprofile: FlavorProfilePut,
}

/// Body of `PUT /v2/lbaas/flavorprofiles/{id}`: any of the fields; none may be `null`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorProfilePut {
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub provider_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub flavor_data: Option<Option<String>>,
}

impl FlavorProfilePut {
    /// Apply the field rules and patch `profile` with the fields present.
    pub fn apply(self, profile: &mut FlavorProfile) -> Result<(), TypesError> {
        patch_profile(
            [
                ("name", self.name, &mut profile.name),
                (
                    "provider_name",
                    self.provider_name,
                    &mut profile.provider_name,
                ),
                ("flavor_data", self.flavor_data, &mut profile.flavor_data),
            ],
            MAX_PROFILE_DATA,
        )
    }
}

/// Patch the three fields of a profile (name, provider, data; in that order): a field set
/// to `null` is refused with Octavia's "not a valid option" wording, lengths are checked.
pub(crate) fn patch_profile(
    fields: [(&str, Option<Option<String>>, &mut String); 3],
    max_data: usize,
) -> Result<(), TypesError> {
    for (i, (field, value, slot)) in fields.into_iter().enumerate() {
        let Some(value) = value else {
            continue;
        };
        let value = value.ok_or_else(|| {
            TypesError::invalid(field, "None is not a valid option for this field")
        })?;
        check_len(field, &value, if i == 2 { max_data } else { 255 })?;
        *slot = value;
    }
    Ok(())
}

/// A flavor profile as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorProfileResponse {
    pub id: String,
    pub name: String,
    pub provider_name: String,
    pub flavor_data: String,
}

impl From<&FlavorProfile> for FlavorProfileResponse {
    fn from(p: &FlavorProfile) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.clone(),
            provider_name: p.provider_name.clone(),
            flavor_data: p.flavor_data.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_body;

    const PROFILE: &str = "11111111-1111-1111-1111-111111111111";

    #[test]
    fn flavor_post_rules_table() {
        let long = "n".repeat(256);
        let cases: Vec<(String, Option<&str>)> = vec![
            (
                format!(r#"{{"flavor":{{"name":"gold","flavor_profile_id":"{PROFILE}"}}}}"#),
                None,
            ),
            (
                format!(r#"{{"flavor":{{"flavor_profile_id":"{PROFILE}"}}}}"#),
                Some("name"),
            ),
            (
                r#"{"flavor":{"name":"gold"}}"#.into(),
                Some("flavor_profile_id"),
            ),
            (
                r#"{"flavor":{"name":"gold","flavor_profile_id":"nope"}}"#.into(),
                Some("flavor_profile_id"),
            ),
            (
                format!(r#"{{"flavor":{{"name":"{long}","flavor_profile_id":"{PROFILE}"}}}}"#),
                Some("name"),
            ),
            (
                format!(
                    r#"{{"flavor":{{"name":"g","description":"{long}","flavor_profile_id":"{PROFILE}"}}}}"#
                ),
                Some("description"),
            ),
            (
                format!(r#"{{"flavor":{{"name":"g","flavor_profile_id":"{PROFILE}","id":"x"}}}}"#),
                Some("flavor.id"),
            ),
        ];
        for (json, field) in cases {
            let r =
                decode_body::<FlavorPostBody>(json.as_bytes()).and_then(|b| b.flavor.into_model());
            match (r, field) {
                (Ok(f), None) => {
                    assert!(f.enabled, "enabled by default");
                    assert_eq!(f.flavor_profile_id.to_string(), PROFILE);
                }
                (Err(e), Some(f)) => assert_eq!(e.field(), f, "{json}: {e}"),
                (r, f) => panic!("{json}: got {r:?}, expected error on {f:?}"),
            }
        }
        let missing = FlavorPost::default().into_model().unwrap_err();
        assert_eq!(
            missing.to_string(),
            "Invalid input for field/attribute name. Value: 'None'. Mandatory field missing."
        );
    }

    #[test]
    fn flavor_put_patches_what_it_names() {
        let mut f = FlavorPost {
            name: Some("a".into()),
            description: Some("d".into()),
            flavor_profile_id: Some(PROFILE.into()),
            ..Default::default()
        }
        .into_model()
        .unwrap();
        let put: FlavorPutBody =
            decode_body(br#"{"flavor":{"description":null,"enabled":false}}"#).unwrap();
        put.flavor.apply(&mut f).unwrap();
        assert_eq!(
            (f.name.as_str(), f.description.as_deref(), f.enabled),
            ("a", None, false)
        );
        let put: FlavorPutBody = decode_body(br#"{"flavor":{"name":null}}"#).unwrap();
        assert_eq!(put.flavor.apply(&mut f).unwrap_err().field(), "name");
        let put = decode_body::<FlavorPutBody>(br#"{"flavor":{"flavor_profile_id":"x"}}"#);
        assert!(put.is_err(), "the profile of a flavor never changes");
        let r = FlavorResponse::from(&f);
        assert_eq!(r.description, "");
    }

    #[test]
    fn profile_post_and_put_rules() {
        let ok: FlavorProfilePostBody = decode_body(
            br#"{"flavorprofile":{"name":"p","provider_name":"amphora","flavor_data":"{}"}}"#,
        )
        .unwrap();
        let mut p = ok.flavorprofile.into_model().unwrap();
        for (json, field) in [
            (
                r#"{"flavorprofile":{"provider_name":"amphora","flavor_data":"{}"}}"#,
                "name",
            ),
            (
                r#"{"flavorprofile":{"name":"p","flavor_data":"{}"}}"#,
                "provider_name",
            ),
            (
                r#"{"flavorprofile":{"name":"p","provider_name":"amphora"}}"#,
                "flavor_data",
            ),
        ] {
            let e = decode_body::<FlavorProfilePostBody>(json.as_bytes())
                .and_then(|b| b.flavorprofile.into_model())
                .unwrap_err();
            assert_eq!(e.field(), field, "{json}");
        }
        let long = format!(
            r#"{{"flavorprofile":{{"name":"p","provider_name":"amphora","flavor_data":"{}"}}}}"#,
            "x".repeat(MAX_PROFILE_DATA + 1)
        );
        let e = decode_body::<FlavorProfilePostBody>(long.as_bytes())
            .and_then(|b| b.flavorprofile.into_model())
            .unwrap_err();
        assert_eq!(e.field(), "flavor_data");

        let put: FlavorProfilePutBody =
            decode_body(br#"{"flavorprofile":{"name":"q","flavor_data":"{\"a\":1}"}}"#).unwrap();
        put.flavorprofile.apply(&mut p).unwrap();
        assert_eq!(
            (p.name.as_str(), p.flavor_data.as_str()),
            ("q", r#"{"a":1}"#)
        );
        assert_eq!(p.provider_name, "amphora");
        let put: FlavorProfilePutBody =
            decode_body(br#"{"flavorprofile":{"provider_name":null}}"#).unwrap();
        assert_eq!(
            put.flavorprofile.apply(&mut p).unwrap_err().field(),
            "provider_name"
        );
    }
}

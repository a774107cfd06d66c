//! Availability zone and availability zone profile request and response bodies
//! (`/v2/lbaas/availabilityzones`, keyed by name, and `/v2/lbaas/availabilityzoneprofiles`).
//! A profile's `availability_zone_data` is checked against its provider with
//! [`crate::provider::validate_availability_zone_data`].

use octavia_model::{AvailabilityZone, AvailabilityZoneProfile, AvailabilityZoneProfileId};
use serde::{Deserialize, Serialize};

use crate::common::{check_len, check_opt_len, check_uuid, mandatory, nullable, or_empty};
use crate::flavor::{check_profile_fields, patch_profile, MAX_PROFILE_DATA};
use crate::TypesError;

/// `{"availability_zone": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZonePostBody {
    pub availability_zone: AvailabilityZonePost,
}

/// Body of `POST /v2/lbaas/availabilityzones`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZonePost {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub availability_zone_profile_id: Option<String>,
}

impl AvailabilityZonePost {
    /// Apply the field rules (name and profile mandatory, lengths, the profile id a UUID) and
    /// build the new zone (enabled unless the body says otherwise).
    pub fn into_model(self) -> Result<AvailabilityZone, TypesError> {
        let name = mandatory("name", self.name)?;
        check_len("name", &name, 255)?;
        check_opt_len("description", self.description.as_deref(), 255)?;
        let field = "availability_zone_profile_id";
        let profile = check_uuid(field, &mandatory(field, self.availability_zone_profile_id)?)?;
        Ok(AvailabilityZone {
            name,
            description: self.description,
            enabled: self.enabled.unwrap_or(true),
            availability_zone_profile_id: AvailabilityZoneProfileId(profile),
        })
    }
}

/// `{"availability_zone": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZonePutBody {
    pub availability_zone: AvailabilityZonePut,
}

/// Body of `PUT /v2/lbaas/availabilityzones/{name}`: description, enabled.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZonePut {
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

impl AvailabilityZonePut {
    /// Apply the field rules and patch `zone` with the fields present.
    pub fn apply(self, zone: &mut AvailabilityZone) -> Result<(), TypesError> {
        if let Some(description) = self.description {
            check_opt_len("description", description.as_deref(), 255)?;
            zone.description = description;
        }
        if let Some(enabled) = self.enabled {
            zone.enabled = enabled;
        }
        Ok(())
    }
}

/// An availability zone as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityZoneResponse {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub availability_zone_profile_id: String,
}

impl From<&AvailabilityZone> for AvailabilityZoneResponse {
    fn from(z: &AvailabilityZone) -> Self {
        Self {
            name: z.name.clone(),
            description: or_empty(&z.description),
            enabled: z.enabled,
            availability_zone_profile_id: z.availability_zone_profile_id.to_string(),
        }
    }
}

/// `{"availability_zone_profile": {...}}` on POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZoneProfilePostBody {
    pub availability_zone_profile: AvailabilityZoneProfilePost,
}

/// Body of `POST /v2/lbaas/availabilityzoneprofiles`: every field mandatory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZoneProfilePost {
    pub name: Option<String>,
    pub provider_name: Option<String>,
    pub availability_zone_data: Option<String>,
}

impl AvailabilityZoneProfilePost {
    /// Apply the field rules (presence, lengths) and build the new profile. Whether its
    /// provider takes its data is [`crate::provider::validate_availability_zone_data`]'s to
    /// say.
    pub fn into_model(self) -> Result<AvailabilityZoneProfile, TypesError> {
        let name = mandatory("name", self.name)?;
        let provider_name = mandatory("provider_name", self.provider_name)?;
        let data = mandatory("availability_zone_data", self.availability_zone_data)?;
        check_profile_fields(&name, &provider_name, "availability_zone_data", &data)?;
        Ok(AvailabilityZoneProfile {
            id: AvailabilityZoneProfileId::new(),
            name,
            provider_name,
            availability_zone_data: data,
        })
    }
}

/// `{"availability_zone_profile": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZoneProfilePutBody {
    pub availability_zone_profile: AvailabilityZoneProfilePut,
}

/// Body of `PUT /v2/lbaas/availabilityzoneprofiles/{id}`: any of the fields; none may be
/// `null`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZoneProfilePut {
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub provider_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub availability_zone_data: Option<Option<String>>,
}

impl AvailabilityZoneProfilePut {
    /// Apply the field rules and patch `profile` with the fields present.
    pub fn apply(self, profile: &mut AvailabilityZoneProfile) -> Result<(), TypesError> {
        patch_profile(
            [
                ("name", self.name, &mut profile.name),
                (
                    "provider_name",
                    self.provider_name,
                    &mut profile.provider_name,
                ),
                (
                    "availability_zone_data",
                    self.availability_zone_data,
                    &mut profile.availability_zone_data,
                ),
            ],
            MAX_PROFILE_DATA,
        )
    }
}

/// An availability zone profile as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityZoneProfileResponse {
    pub id: String,
    pub name: String,
    pub provider_name: String,
    pub availability_zone_data: String,
}

impl From<&AvailabilityZoneProfile> for AvailabilityZoneProfileResponse {
    fn from(p: &AvailabilityZoneProfile) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.clone(),
            provider_name: p.provider_name.clone(),
            availability_zone_data: p.availability_zone_data.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_body;

    const PROFILE: &str = "11111111-1111-1111-1111-111111111111";

    #[test]
    fn zone_post_and_put_rules() {
        let ok: AvailabilityZonePostBody = decode_body(
            format!(
                r#"{{"availability_zone":{{"name":"az1","availability_zone_profile_id":"{PROFILE}"}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let mut z = ok.availability_zone.into_model().unwrap();
        assert!(z.enabled);
        for (json, field) in [
            (
                format!(
                    r#"{{"availability_zone":{{"availability_zone_profile_id":"{PROFILE}"}}}}"#
                ),
                "name",
            ),
            (
                r#"{"availability_zone":{"name":"a"}}"#.to_string(),
                "availability_zone_profile_id",
            ),
            (
                r#"{"availability_zone":{"name":"a","availability_zone_profile_id":"x"}}"#
                    .to_string(),
                "availability_zone_profile_id",
            ),
        ] {
            let e = decode_body::<AvailabilityZonePostBody>(json.as_bytes())
                .and_then(|b| b.availability_zone.into_model())
                .unwrap_err();
            assert_eq!(e.field(), field, "{json}");
        }
        let put: AvailabilityZonePutBody =
            decode_body(br#"{"availability_zone":{"description":"d","enabled":false}}"#).unwrap();
        put.availability_zone.apply(&mut z).unwrap();
        assert_eq!((z.description.as_deref(), z.enabled), (Some("d"), false));
        assert!(
            decode_body::<AvailabilityZonePutBody>(br#"{"availability_zone":{"name":"b"}}"#)
                .is_err(),
            "a zone keeps its name"
        );
    }

    #[test]
    fn zone_profile_rules() {
        let body: AvailabilityZoneProfilePostBody = decode_body(
            br#"{"availability_zone_profile":{"name":"p","provider_name":"amphora","availability_zone_data":"{}"}}"#,
        )
        .unwrap();
        let mut p = body.availability_zone_profile.into_model().unwrap();
        let e = AvailabilityZoneProfilePost {
            name: Some("p".into()),
            provider_name: Some("amphora".into()),
            ..Default::default()
        }
        .into_model()
        .unwrap_err();
        assert_eq!(e.field(), "availability_zone_data");
        let put: AvailabilityZoneProfilePutBody = decode_body(
            br#"{"availability_zone_profile":{"availability_zone_data":"{\"compute_zone\":\"z\"}"}}"#,
        )
        .unwrap();
        put.availability_zone_profile.apply(&mut p).unwrap();
        assert_eq!(p.availability_zone_data, r#"{"compute_zone":"z"}"#);
        assert_eq!(AvailabilityZoneProfileResponse::from(&p).name, "p");
    }
}

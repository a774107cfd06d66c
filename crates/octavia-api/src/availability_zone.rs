//! `/v2/lbaas/availabilityzones` (keyed by name) and `/v2/lbaas/availabilityzoneprofiles`,
//! and what a zone does to a new load balancer ([`for_new_load_balancer`]).

use octavia_api_types::availability_zone::{
    AvailabilityZonePostBody, AvailabilityZoneProfilePostBody, AvailabilityZoneProfilePutBody,
    AvailabilityZoneProfileResponse, AvailabilityZonePutBody, AvailabilityZoneResponse,
};
use octavia_api_types::provider::validate_availability_zone_data;
use octavia_db::{DbError, ListQuery, RecordKind, Store};
use octavia_model::{
    AvailabilityZone, AvailabilityZoneMetadata, AvailabilityZoneProfile, AvailabilityZoneProfileId,
};

use crate::app::AppState;
use crate::catalogue::Catalogued;
use crate::error::ApiError;

impl Catalogued for AvailabilityZoneProfile {
    type Key = AvailabilityZoneProfileId;
    type Response = AvailabilityZoneProfileResponse;
    type PostBody = AvailabilityZoneProfilePostBody;
    type PutBody = AvailabilityZoneProfilePutBody;
    const KIND: RecordKind = RecordKind::AvailabilityZoneProfile;
    const RULE: &'static str = "availability-zone-profile";
    const ONE: &'static str = "availability_zone_profile";
    const MANY: &'static str = "availability_zone_profiles";
    // Octavia's spelling: singular, unlike every other collection.
    const LINKS: &'static str = "availability_zone_profile_links";

    fn key(&self) -> String {
        self.id.to_string()
    }

    async fn load(store: &Store, key: &AvailabilityZoneProfileId) -> Result<Option<Self>, DbError> {
        store.get_availability_zone_profile(*key).await
    }

    async fn load_page(store: &Store, query: &ListQuery) -> Result<Vec<Self>, DbError> {
        store.list_availability_zone_profiles(query).await
    }

    async fn create(s: &AppState, body: AvailabilityZoneProfilePostBody) -> Result<Self, ApiError> {
        let profile = body.availability_zone_profile.into_model()?;
        validate_availability_zone_data(&profile.provider_name, &profile.availability_zone_data)?;
        Ok(s.ctx
            .store
            .create_availability_zone_profile(&profile)
            .await?)
    }

    async fn update(
        s: &AppState,
        old: Self,
        body: AvailabilityZoneProfilePutBody,
    ) -> Result<Self, ApiError> {
        let mut new = old.clone();
        body.availability_zone_profile.apply(&mut new)?;
        if (&new.provider_name, &new.availability_zone_data)
            != (&old.provider_name, &old.availability_zone_data)
        {
            validate_availability_zone_data(&new.provider_name, &new.availability_zone_data)?;
        }
        Ok(s.ctx.store.update_availability_zone_profile(&new).await?)
    }

    async fn remove(store: &Store, key: &AvailabilityZoneProfileId) -> Result<(), DbError> {
        store.delete_availability_zone_profile(*key).await
    }
}

impl Catalogued for AvailabilityZone {
    type Key = String;
    type Response = AvailabilityZoneResponse;
    type PostBody = AvailabilityZonePostBody;
    type PutBody = AvailabilityZonePutBody;
    const KIND: RecordKind = RecordKind::AvailabilityZone;
    const RULE: &'static str = "availability-zone";
    const ONE: &'static str = "availability_zone";
    const MANY: &'static str = "availability_zones";
    const LINKS: &'static str = "availability_zones_links";

    fn key(&self) -> String {
        self.name.clone()
    }

    async fn load(store: &Store, key: &String) -> Result<Option<Self>, DbError> {
        store.get_availability_zone(key).await
    }

    async fn load_page(store: &Store, query: &ListQuery) -> Result<Vec<Self>, DbError> {
        store.list_availability_zones(query).await
    }

    async fn create(s: &AppState, body: AvailabilityZonePostBody) -> Result<Self, ApiError> {
        let zone = body.availability_zone.into_model()?;
        Ok(s.ctx.store.create_availability_zone(&zone).await?)
    }

    async fn update(
        s: &AppState,
        mut zone: Self,
        body: AvailabilityZonePutBody,
    ) -> Result<Self, ApiError> {
        body.availability_zone.apply(&mut zone)?;
        Ok(s.ctx.store.update_availability_zone(&zone).await?)
    }

    async fn remove(store: &Store, key: &String) -> Result<(), DbError> {
        store.delete_availability_zone(key).await
    }
}

/// What the availability zone a new load balancer names (if any) makes of it: the zone must
/// exist and be enabled (400, Octavia's words), and the load balancer's `provider` must take
/// its settings (as Octavia asks the load balancer's driver). No zone: nothing. The store
/// checks the zone again when it inserts the load balancer, under a lock.
pub async fn for_new_load_balancer(
    s: &AppState,
    name: Option<&str>,
    provider: &str,
) -> Result<AvailabilityZoneMetadata, ApiError> {
    let Some(name) = name else {
        return Ok(AvailabilityZoneMetadata::default());
    };
    let (zone, profile) = s
        .ctx
        .store
        .get_availability_zone_with_profile(name)
        .await?
        .ok_or_else(|| {
            ApiError::BadRequest("Validation failure: Invalid availability zone.".to_string())
        })?;
    if !zone.enabled {
        return Err(ApiError::BadRequest(format!(
            "The selected availability_zone is not allowed in this deployment: {name}"
        )));
    }
    Ok(validate_availability_zone_data(
        provider,
        &profile.availability_zone_data,
    )?)
}

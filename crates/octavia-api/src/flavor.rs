//! `/v2/lbaas/flavors` and `/v2/lbaas/flavorprofiles`, and what a flavor does to a new load
//! balancer: its provider and topology ([`apply_to_new_load_balancer`]).

use octavia_api_types::flavor::{
    FlavorPostBody, FlavorProfilePostBody, FlavorProfilePutBody, FlavorProfileResponse,
    FlavorPutBody, FlavorResponse,
};
use octavia_api_types::load_balancer::LoadBalancerPost;
use octavia_api_types::provider::{validate_flavor_data, ProfileError};
use octavia_db::{DbError, ListQuery, RecordKind, Store};
use octavia_model::{Flavor, FlavorId, FlavorMetadata, FlavorProfile, FlavorProfileId, Topology};

use crate::app::AppState;
use crate::catalogue::Catalogued;
use crate::error::ApiError;

impl From<ProfileError> for ApiError {
    fn from(e: ProfileError) -> Self {
        match e {
            ProfileError::NotEnabled(_) | ProfileError::NotJson { .. } => {
                Self::BadRequest(e.to_string())
            }
            ProfileError::Unsupported { .. } => Self::NotImplemented(e.to_string()),
        }
    }
}

impl Catalogued for FlavorProfile {
    type Key = FlavorProfileId;
    type Response = FlavorProfileResponse;
    type PostBody = FlavorProfilePostBody;
    type PutBody = FlavorProfilePutBody;
    const KIND: RecordKind = RecordKind::FlavorProfile;
    const RULE: &'static str = "flavor-profile";
    const ONE: &'static str = "flavorprofile";
    const MANY: &'static str = "flavorprofiles";
    // Octavia's spelling: singular, unlike every other collection.
    const LINKS: &'static str = "flavorprofile_links";

    fn key(&self) -> String {
        self.id.to_string()
    }

    async fn load(store: &Store, key: &FlavorProfileId) -> Result<Option<Self>, DbError> {
        store.get_flavor_profile(*key).await
    }

    async fn load_page(store: &Store, query: &ListQuery) -> Result<Vec<Self>, DbError> {
        store.list_flavor_profiles(query).await
    }

    async fn create(s: &AppState, body: FlavorProfilePostBody) -> Result<Self, ApiError> {
        let profile = body.flavorprofile.into_model()?;
        validate_flavor_data(&profile.provider_name, &profile.flavor_data)?;
        Ok(s.ctx.store.create_flavor_profile(&profile).await?)
    }

    async fn update(s: &AppState, old: Self, body: FlavorProfilePutBody) -> Result<Self, ApiError> {
        let mut new = old.clone();
        body.flavorprofile.apply(&mut new)?;
        if (&new.provider_name, &new.flavor_data) != (&old.provider_name, &old.flavor_data) {
            validate_flavor_data(&new.provider_name, &new.flavor_data)?;
        }
        Ok(s.ctx.store.update_flavor_profile(&new).await?)
    }

    async fn remove(store: &Store, key: &FlavorProfileId) -> Result<(), DbError> {
        store.delete_flavor_profile(*key).await
    }
}

impl Catalogued for Flavor {
    type Key = FlavorId;
    type Response = FlavorResponse;
    type PostBody = FlavorPostBody;
    type PutBody = FlavorPutBody;
    const KIND: RecordKind = RecordKind::Flavor;
    const RULE: &'static str = "flavor";
    const ONE: &'static str = "flavor";
    const MANY: &'static str = "flavors";
    const LINKS: &'static str = "flavors_links";

    fn key(&self) -> String {
        self.id.to_string()
    }

    async fn load(store: &Store, key: &FlavorId) -> Result<Option<Self>, DbError> {
        store.get_flavor(*key).await
    }

    async fn load_page(store: &Store, query: &ListQuery) -> Result<Vec<Self>, DbError> {
        store.list_flavors(query).await
    }

    async fn create(s: &AppState, body: FlavorPostBody) -> Result<Self, ApiError> {
        let flavor = body.flavor.into_model()?;
        Ok(s.ctx.store.create_flavor(&flavor).await?)
    }

    async fn update(s: &AppState, mut flavor: Self, body: FlavorPutBody) -> Result<Self, ApiError> {
        body.flavor.apply(&mut flavor)?;
        Ok(s.ctx.store.update_flavor(&flavor).await?)
    }

    async fn remove(store: &Store, key: &FlavorId) -> Result<(), DbError> {
        store.delete_flavor(*key).await
    }
}

fn invalid_flavor() -> ApiError {
    ApiError::BadRequest("Validation failure: Invalid flavor_id.".to_string())
}

/// What the flavor a new load balancer names (if any) makes of it, Octavia's way: the
/// flavor must exist and be enabled (400), a provider the body names must be the flavor's
/// (400; without one the flavor's provider is taken, without a flavor the deployment's
/// default), and the flavor's settings give the topology (else `[controller_worker]
/// loadbalancer_topology`). Sets `post.provider`; returns the topology. The store checks the
/// flavor again when it inserts the load balancer, under a lock.
pub async fn apply_to_new_load_balancer(
    s: &AppState,
    post: &mut LoadBalancerPost,
) -> Result<Topology, ApiError> {
    let default_topology = s.ctx.settings.loadbalancer_topology;
    let Some(raw) = post.flavor_id.clone() else {
        post.provider
            .get_or_insert_with(|| s.ctx.settings.default_provider_driver.clone());
        return Ok(default_topology);
    };
    let id: FlavorId = raw.parse().map_err(|_| invalid_flavor())?;
    let (flavor, profile) = s
        .ctx
        .store
        .get_flavor_with_profile(id)
        .await?
        .ok_or_else(invalid_flavor)?;
    if !flavor.enabled {
        return Err(ApiError::BadRequest(format!(
            "The selected flavor is not allowed in this deployment: {raw}"
        )));
    }
    match &post.provider {
        Some(p) if *p != profile.provider_name => {
            return Err(ApiError::BadRequest(format!(
                "Flavor '{raw}' is not compatible with provider '{p}'"
            )))
        }
        Some(_) => {}
        None => post.provider = Some(profile.provider_name.clone()),
    }
    // The provider must still take the stored settings (as Octavia checks again here).
    let metadata: FlavorMetadata =
        validate_flavor_data(&profile.provider_name, &profile.flavor_data)?;
    Ok(metadata.loadbalancer_topology.unwrap_or(default_topology))
}

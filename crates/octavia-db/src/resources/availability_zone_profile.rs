//! Availability zone profiles (`/v2/lbaas/availabilityzoneprofiles`): what a provider makes
//! of an availability zone. A profile that a zone uses keeps its provider and settings
//! (Octavia's rule): a zone's meaning never changes under the load balancers placed in it, so
//! the worker may read it whenever it builds an amphora.

use octavia_model::*;

use crate::db::{args, id as sid, Conn};
use crate::list::list_rows;
use crate::rows::{source, AvailabilityZoneProfileRow, AVAILABILITY_ZONE_PROFILE_SELECT};
use crate::{DbError, ListQuery, RecordKind, Result, Store};

/// The profile `id`, its row locked for the rest of the transaction (PostgreSQL
/// `FOR UPDATE`; SQLite holds the write lock).
async fn lock(c: &mut Conn<'_>, id: AvailabilityZoneProfileId) -> Result<AvailabilityZoneProfile> {
    let sql = format!(
        "SELECT {AVAILABILITY_ZONE_PROFILE_SELECT} FROM availability_zone_profile x WHERE x.id = $1{}",
        c.for_update()
    );
    let row: Option<AvailabilityZoneProfileRow> = c.fetch_optional(&sql, args![sid(id)]).await?;
    row.ok_or_else(|| DbError::not_found(RecordKind::AvailabilityZoneProfile, id))?
        .into_model()
}

/// Conflict if an availability zone uses the profile `id`.
async fn check_unused(c: &mut Conn<'_>, id: AvailabilityZoneProfileId) -> Result<()> {
    let n = c
        .count(
            "SELECT COUNT(*) FROM availability_zone WHERE availability_zone_profile_id = $1",
            args![sid(id)],
        )
        .await?;
    if n > 0 {
        return Err(DbError::Conflict(format!(
            "Availability Zone Profile {id} is in use and cannot be modified."
        )));
    }
    Ok(())
}

impl Store {
    pub async fn get_availability_zone_profile(
        &self,
        id: AvailabilityZoneProfileId,
    ) -> Result<Option<AvailabilityZoneProfile>> {
        let mut h = self.pool.acquire().await?;
        let row: Option<AvailabilityZoneProfileRow> = h
            .conn()
            .fetch_optional(
                &format!("SELECT {AVAILABILITY_ZONE_PROFILE_SELECT} FROM availability_zone_profile x WHERE x.id = $1"),
                args![sid(id)],
            )
            .await?;
        row.map(AvailabilityZoneProfileRow::into_model).transpose()
    }

    pub async fn list_availability_zone_profiles(
        &self,
        q: &ListQuery,
    ) -> Result<Vec<AvailabilityZoneProfile>> {
        let mut h = self.pool.acquire().await?;
        let src = source(RecordKind::AvailabilityZoneProfile);
        let rows: Vec<AvailabilityZoneProfileRow> =
            list_rows(&mut h.conn(), &src, q, vec![]).await?;
        rows.into_iter()
            .map(AvailabilityZoneProfileRow::into_model)
            .collect()
    }

    /// Store a new profile (its settings already checked against its provider).
    pub async fn create_availability_zone_profile(
        &self,
        p: &AvailabilityZoneProfile,
    ) -> Result<AvailabilityZoneProfile> {
        let mut tx = self.pool.begin().await?;
        tx.conn()
            .execute(
                "INSERT INTO availability_zone_profile (id, name, provider_name, availability_zone_data) \
                 VALUES ($1, $2, $3, $4)",
                args![sid(p.id), &p.name, &p.provider_name, &p.availability_zone_data],
            )
            .await?;
        tx.commit().await?;
        Ok(p.clone())
    }

    /// Write the new value of a profile. Its provider and settings may change only while no
    /// availability zone uses it (else Conflict); its name always may.
    pub async fn update_availability_zone_profile(
        &self,
        p: &AvailabilityZoneProfile,
    ) -> Result<AvailabilityZoneProfile> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let old = lock(&mut c, p.id).await?;
        if old.provider_name != p.provider_name
            || old.availability_zone_data != p.availability_zone_data
        {
            check_unused(&mut c, p.id).await?;
        }
        c.execute(
            "UPDATE availability_zone_profile SET name = $1, provider_name = $2, availability_zone_data = $3 \
             WHERE id = $4",
            args![&p.name, &p.provider_name, &p.availability_zone_data, sid(p.id)],
        )
        .await?;
        tx.commit().await?;
        Ok(p.clone())
    }

    /// Remove a profile no availability zone uses (else Conflict; unknown: NotFound).
    pub async fn delete_availability_zone_profile(
        &self,
        id: AvailabilityZoneProfileId,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        lock(&mut c, id).await?;
        check_unused(&mut c, id).await?;
        c.execute(
            "DELETE FROM availability_zone_profile WHERE id = $1",
            args![sid(id)],
        )
        .await?;
        tx.commit().await
    }
}

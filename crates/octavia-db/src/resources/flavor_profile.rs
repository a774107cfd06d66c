//! Flavor profiles (`/v2/lbaas/flavorprofiles`): what a provider makes of a flavor. A
//! profile that a flavor uses keeps its provider and settings (Octavia's rule): a flavor's
//! meaning never changes under the load balancers built with it, so the worker may read it
//! whenever it builds an amphora.

use octavia_model::*;

use crate::db::{args, id as sid, Conn};
use crate::list::list_rows;
use crate::rows::{source, FlavorProfileRow, FLAVOR_PROFILE_SELECT};
use crate::{DbError, ListQuery, RecordKind, Result, Store};

/// The profile `id`, its row locked for the rest of the transaction (PostgreSQL
/// `FOR UPDATE`; SQLite holds the write lock).
async fn lock(c: &mut Conn<'_>, id: FlavorProfileId) -> Result<FlavorProfile> {
    let sql = format!(
        "SELECT {FLAVOR_PROFILE_SELECT} FROM flavor_profile x WHERE x.id = $1{}",
        c.for_update()
    );
    let row: Option<FlavorProfileRow> = c.fetch_optional(&sql, args![sid(id)]).await?;
    row.ok_or_else(|| DbError::not_found(RecordKind::FlavorProfile, id))?
        .into_model()
}

/// Conflict if a flavor uses the profile `id`.
async fn check_unused(c: &mut Conn<'_>, id: FlavorProfileId) -> Result<()> {
    let n = c
        .count(
            "SELECT COUNT(*) FROM flavor WHERE flavor_profile_id = $1",
            args![sid(id)],
        )
        .await?;
    if n > 0 {
        return Err(DbError::Conflict(format!(
            "Flavor profile {id} is in use and cannot be modified."
        )));
    }
    Ok(())
}

impl Store {
    pub async fn get_flavor_profile(&self, id: FlavorProfileId) -> Result<Option<FlavorProfile>> {
        let mut h = self.pool.acquire().await?;
        let row: Option<FlavorProfileRow> = h
            .conn()
            .fetch_optional(
                &format!("SELECT {FLAVOR_PROFILE_SELECT} FROM flavor_profile x WHERE x.id = $1"),
                args![sid(id)],
            )
            .await?;
        row.map(FlavorProfileRow::into_model).transpose()
    }

    pub async fn list_flavor_profiles(&self, q: &ListQuery) -> Result<Vec<FlavorProfile>> {
        let mut h = self.pool.acquire().await?;
        let src = source(RecordKind::FlavorProfile);
        let rows: Vec<FlavorProfileRow> = list_rows(&mut h.conn(), &src, q, vec![]).await?;
        rows.into_iter().map(FlavorProfileRow::into_model).collect()
    }

    /// Store a new profile (its settings already checked against its provider).
    pub async fn create_flavor_profile(&self, p: &FlavorProfile) -> Result<FlavorProfile> {
        let mut tx = self.pool.begin().await?;
        tx.conn()
            .execute(
                "INSERT INTO flavor_profile (id, name, provider_name, flavor_data) \
                 VALUES ($1, $2, $3, $4)",
                args![sid(p.id), &p.name, &p.provider_name, &p.flavor_data],
            )
            .await?;
        tx.commit().await?;
        Ok(p.clone())
    }

    /// Write the new value of a profile. Its provider and settings may change only while no
    /// flavor uses it (else Conflict); its name always may.
    pub async fn update_flavor_profile(&self, p: &FlavorProfile) -> Result<FlavorProfile> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let old = lock(&mut c, p.id).await?;
        if old.provider_name != p.provider_name || old.flavor_data != p.flavor_data {
            check_unused(&mut c, p.id).await?;
        }
        c.execute(
            "UPDATE flavor_profile SET name = $1, provider_name = $2, flavor_data = $3 \
             WHERE id = $4",
            args![&p.name, &p.provider_name, &p.flavor_data, sid(p.id)],
        )
        .await?;
        tx.commit().await?;
        Ok(p.clone())
    }

    /// Remove a profile no flavor uses (else Conflict; unknown: NotFound).
    pub async fn delete_flavor_profile(&self, id: FlavorProfileId) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        lock(&mut c, id).await?;
        check_unused(&mut c, id).await?;
        c.execute("DELETE FROM flavor_profile WHERE id = $1", args![sid(id)])
            .await?;
        tx.commit().await
    }
}

//! Availability zones (`/v2/lbaas/availabilityzones`), keyed by name: enabled or not, each
//! pointing at the profile that says what it means. A load balancer names its zone; the
//! create of a load balancer takes the zone in its own transaction ([`use_availability_zone`])
//! and the delete of a zone refuses while a load balancer that is not DELETED uses it.

use octavia_model::*;

use crate::db::{args, id as sid, Conn};
use crate::list::list_rows;
use crate::rows::{
    source, AvailabilityZoneProfileRow, AvailabilityZoneRow, AVAILABILITY_ZONE_PROFILE_SELECT,
    AVAILABILITY_ZONE_SELECT,
};
use crate::schema::Table;
use crate::{DbError, ListQuery, RecordKind, Result, Store};

/// Inside a load balancer's create: the zone `name` must exist and be enabled (Octavia's 400
/// wording otherwise). Its row stays shared-locked until the create commits (PostgreSQL
/// `FOR SHARE`), so a concurrent delete of the zone waits and then sees the new load balancer.
pub(crate) async fn use_availability_zone(c: &mut Conn<'_>, name: &str) -> Result<()> {
    let sql = format!(
        "SELECT enabled FROM availability_zone WHERE name = $1{}",
        c.for_share()
    );
    let row: Option<(bool,)> = c.fetch_optional(&sql, args![name]).await?;
    match row {
        None => Err(DbError::Invalid(
            "Validation failure: Invalid availability zone.".to_string(),
        )),
        Some((false,)) => Err(DbError::Invalid(format!(
            "The selected availability_zone is not allowed in this deployment: {name}"
        ))),
        Some((true,)) => Ok(()),
    }
}

async fn read(c: &mut Conn<'_>, name: &str, lock: &str) -> Result<Option<AvailabilityZone>> {
    let row: Option<AvailabilityZoneRow> = c
        .fetch_optional(
            &format!("SELECT {AVAILABILITY_ZONE_SELECT} FROM availability_zone x WHERE x.name = $1{lock}"),
            args![name],
        )
        .await?;
    row.map(AvailabilityZoneRow::into_model).transpose()
}

impl Store {
    pub async fn get_availability_zone(&self, name: &str) -> Result<Option<AvailabilityZone>> {
        let mut h = self.pool.acquire().await?;
        read(&mut h.conn(), name, "").await
    }

    /// The zone `name` with the profile it points at.
    pub async fn get_availability_zone_with_profile(
        &self,
        name: &str,
    ) -> Result<Option<(AvailabilityZone, AvailabilityZoneProfile)>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let Some(zone) = read(&mut c, name, "").await? else {
            return Ok(None);
        };
        let profile_id = zone.availability_zone_profile_id;
        let row: Option<AvailabilityZoneProfileRow> = c
            .fetch_optional(
                &format!(
                    "SELECT {AVAILABILITY_ZONE_PROFILE_SELECT} FROM availability_zone_profile x \
                     WHERE x.id = $1"
                ),
                args![sid(profile_id)],
            )
            .await?;
        let profile = row
            .ok_or_else(|| DbError::not_found(RecordKind::AvailabilityZoneProfile, profile_id))?
            .into_model()?;
        Ok(Some((zone, profile)))
    }

    pub async fn list_availability_zones(&self, q: &ListQuery) -> Result<Vec<AvailabilityZone>> {
        let mut h = self.pool.acquire().await?;
        let src = source(RecordKind::AvailabilityZone);
        let rows: Vec<AvailabilityZoneRow> = list_rows(&mut h.conn(), &src, q, vec![]).await?;
        rows.into_iter()
            .map(AvailabilityZoneRow::into_model)
            .collect()
    }

    /// Store a new zone. Its profile must exist (else Invalid, `Availability Zone Profile
    /// <id> not found.`); its name must be new (else Conflict).
    pub async fn create_availability_zone(&self, z: &AvailabilityZone) -> Result<AvailabilityZone> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let sql = format!(
            "SELECT id FROM availability_zone_profile WHERE id = $1{}",
            c.for_share()
        );
        let profile = z.availability_zone_profile_id;
        let found: Option<(String,)> = c.fetch_optional(&sql, args![sid(profile)]).await?;
        if found.is_none() {
            return Err(DbError::Invalid(format!(
                "{} {profile} not found.",
                RecordKind::AvailabilityZoneProfile
            )));
        }
        c.execute(
            "INSERT INTO availability_zone (name, description, enabled, \
             availability_zone_profile_id) VALUES ($1, $2, $3, $4)",
            args![&z.name, &z.description, z.enabled, sid(profile)],
        )
        .await
        .map_err(|e| match e {
            // Octavia's wording, article included.
            DbError::Conflict(_) => {
                DbError::Conflict(format!("A availability zone of {} already exists.", z.name))
            }
            other => other,
        })?;
        tx.commit().await?;
        Ok(z.clone())
    }

    /// Write the new description and enabled flag of a zone (its name and profile never
    /// change).
    pub async fn update_availability_zone(&self, z: &AvailabilityZone) -> Result<AvailabilityZone> {
        let mut tx = self.pool.begin().await?;
        let changed = tx
            .conn()
            .execute(
                "UPDATE availability_zone SET description = $1, enabled = $2 WHERE name = $3",
                args![&z.description, z.enabled, &z.name],
            )
            .await?;
        if changed == 0 {
            return Err(DbError::not_found(RecordKind::AvailabilityZone, &z.name));
        }
        tx.commit().await?;
        Ok(z.clone())
    }

    /// Remove a zone. Refused (Conflict) while a load balancer that is not DELETED uses it.
    /// Octavia refuses while any load balancer row names it, DELETED ones included (its
    /// foreign key); a DELETED load balancer no longer holds anything, so here it does not
    /// keep the zone.
    pub async fn delete_availability_zone(&self, name: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let lock = c.for_update();
        read(&mut c, name, lock)
            .await?
            .ok_or_else(|| DbError::not_found(RecordKind::AvailabilityZone, name))?;
        let live = ObjectKind::LoadBalancer.live().unwrap_or("TRUE");
        let users = c
            .count(
                &format!(
                    "SELECT COUNT(*) FROM load_balancer x WHERE x.availability_zone = $1 AND {live}"
                ),
                args![name],
            )
            .await?;
        if users > 0 {
            return Err(DbError::Conflict(format!(
                "Availability Zone {name} is in use and cannot be modified."
            )));
        }
        c.execute("DELETE FROM availability_zone WHERE name = $1", args![name])
            .await?;
        tx.commit().await
    }
}

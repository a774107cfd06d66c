//! Flavors (`/v2/lbaas/flavors`): named, enabled or not, each pointing at the profile that
//! says what it means. A load balancer names its flavor by id; the create of a load balancer
//! takes the flavor in its own transaction ([`use_flavor`]) and the delete of a flavor refuses
//! while a load balancer that is not DELETED uses it, so a live load balancer's flavor always
//! exists.

use octavia_model::*;

use crate::db::{args, id as sid, Conn};
use crate::list::list_rows;
use crate::rows::{source, FlavorProfileRow, FlavorRow, FLAVOR_PROFILE_SELECT, FLAVOR_SELECT};
use crate::schema::Table;
use crate::Store;
use crate::{DbError, ListQuery, RecordKind, Result};

/// Conflict for a second flavor named `name` (the unique constraint said so).
fn duplicate(e: DbError, name: &str) -> DbError {
    match e {
        DbError::Conflict(_) => DbError::Conflict(format!("A flavor of {name} already exists.")),
        other => other,
    }
}

/// Inside a load balancer's create: the flavor `id` must exist and be enabled (Octavia's
/// 400 wording otherwise). Its row stays shared-locked until the create commits (PostgreSQL
/// `FOR SHARE`), so a concurrent delete of the flavor waits and then sees the new load
/// balancer.
pub(crate) async fn use_flavor(c: &mut Conn<'_>, id: &str) -> Result<()> {
    let sql = format!("SELECT enabled FROM flavor WHERE id = $1{}", c.for_share());
    let row: Option<(bool,)> = c.fetch_optional(&sql, args![id]).await?;
    match row {
        None => Err(DbError::Invalid(
            "Validation failure: Invalid flavor_id.".to_string(),
        )),
        Some((false,)) => Err(DbError::Invalid(format!(
            "The selected flavor is not allowed in this deployment: {id}"
        ))),
        Some((true,)) => Ok(()),
    }
}

async fn read(c: &mut Conn<'_>, id: FlavorId, lock: &str) -> Result<Option<Flavor>> {
    let row: Option<FlavorRow> = c
        .fetch_optional(
            &format!("SELECT {FLAVOR_SELECT} FROM flavor x WHERE x.id = $1{lock}"),
            args![sid(id)],
        )
        .await?;
    row.map(FlavorRow::into_model).transpose()
}

impl Store {
    pub async fn get_flavor(&self, id: FlavorId) -> Result<Option<Flavor>> {
        let mut h = self.pool.acquire().await?;
        read(&mut h.conn(), id, "").await
    }

    /// The flavor `id` with the profile it points at.
    pub async fn get_flavor_with_profile(
        &self,
        id: FlavorId,
    ) -> Result<Option<(Flavor, FlavorProfile)>> {
        let mut h = self.pool.acquire().await?;
        let mut c = h.conn();
        let Some(flavor) = read(&mut c, id, "").await? else {
            return Ok(None);
        };
        let row: Option<FlavorProfileRow> = c
            .fetch_optional(
                &format!("SELECT {FLAVOR_PROFILE_SELECT} FROM flavor_profile x WHERE x.id = $1"),
                args![sid(flavor.flavor_profile_id)],
            )
            .await?;
        let profile = row
            .ok_or_else(|| DbError::not_found(RecordKind::FlavorProfile, flavor.flavor_profile_id))?
            .into_model()?;
        Ok(Some((flavor, profile)))
    }

    pub async fn list_flavors(&self, q: &ListQuery) -> Result<Vec<Flavor>> {
        let mut h = self.pool.acquire().await?;
        let rows: Vec<FlavorRow> =
            list_rows(&mut h.conn(), &source(RecordKind::Flavor), q, vec![]).await?;
        rows.into_iter().map(FlavorRow::into_model).collect()
    }

    /// Store a new flavor. Its profile must exist (else Invalid, `Flavor Profile <id> not
    /// found.`); its name must be new (else Conflict).
    pub async fn create_flavor(&self, f: &Flavor) -> Result<Flavor> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let sql = format!(
            "SELECT id FROM flavor_profile WHERE id = $1{}",
            c.for_share()
        );
        let found: Option<(String,)> = c
            .fetch_optional(&sql, args![sid(f.flavor_profile_id)])
            .await?;
        if found.is_none() {
            return Err(DbError::Invalid(format!(
                "{} {} not found.",
                RecordKind::FlavorProfile,
                f.flavor_profile_id
            )));
        }
        c.execute(
            "INSERT INTO flavor (id, name, description, enabled, flavor_profile_id) \
             VALUES ($1, $2, $3, $4, $5)",
            args![
                sid(f.id),
                &f.name,
                &f.description,
                f.enabled,
                sid(f.flavor_profile_id)
            ],
        )
        .await
        .map_err(|e| duplicate(e, &f.name))?;
        tx.commit().await?;
        Ok(f.clone())
    }

    /// Write the new name, description and enabled flag of a flavor (its profile never
    /// changes). A name another flavor has: Conflict.
    pub async fn update_flavor(&self, f: &Flavor) -> Result<Flavor> {
        let mut tx = self.pool.begin().await?;
        let changed = tx
            .conn()
            .execute(
                "UPDATE flavor SET name = $1, description = $2, enabled = $3 WHERE id = $4",
                args![&f.name, &f.description, f.enabled, sid(f.id)],
            )
            .await
            .map_err(|e| duplicate(e, &f.name))?;
        if changed == 0 {
            return Err(DbError::not_found(RecordKind::Flavor, f.id));
        }
        tx.commit().await?;
        Ok(f.clone())
    }

    /// Remove a flavor. Refused (Conflict) while a load balancer that is not DELETED uses
    /// it. Octavia refuses while any load balancer row names it, DELETED ones included (its
    /// foreign key); a DELETED load balancer no longer holds anything, so here it does not
    /// keep the flavor.
    pub async fn delete_flavor(&self, id: FlavorId) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut c = tx.conn();
        let lock = c.for_update();
        read(&mut c, id, lock)
            .await?
            .ok_or_else(|| DbError::not_found(RecordKind::Flavor, id))?;
        let live = ObjectKind::LoadBalancer.live().unwrap_or("TRUE");
        let users = c
            .count(
                &format!("SELECT COUNT(*) FROM load_balancer x WHERE x.flavor_id = $1 AND {live}"),
                args![sid(id)],
            )
            .await?;
        if users > 0 {
            return Err(DbError::Conflict(format!(
                "Flavor {id} is in use and cannot be modified."
            )));
        }
        c.execute("DELETE FROM flavor WHERE id = $1", args![sid(id)])
            .await?;
        tx.commit().await
    }
}

//! Bringing accounts over from another system into Keyway's database: `keyway import strapi`
//! ([`strapi`]). An importer reads the other system itself (it is the only code outside `store` that
//! speaks SQL, because the schema it reads is not Keyway's) and writes through the [`Store`] trait,
//! like every other part of Keyway.
//!
//! [`Store`]: crate::store::Store

pub mod strapi;

//! Computer groups and package groups (SPEC "Rules, groups, power, users").
//!
//! Trees: `groups`: group name → [`GroupRecord`]; `package_groups`: name →
//! [`PackageGroupRecord`]. Each change is one compare-and-swap, flushed before
//! the method returns. Rules themselves are job containers with a
//! [`RuleSpec`](super::jobs::RuleSpec) (see [`jobs`](super::jobs)).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sitecast_common::groups::Criteria;
use sitecast_common::ids::{ComputerId, GroupName, PackageId};

use super::{encode, Result, SledStore};
use crate::error::CentralError;

/// A computer group: its static members, and criteria for dynamic ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub name: GroupName,
    pub description: String,
    pub computers: Vec<ComputerId>,
    pub criteria: Criteria,
    pub created_at: Timestamp,
}

/// A package group: packages in the order rules deploy them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageGroupRecord {
    pub name: GroupName,
    pub description: String,
    pub packages: Vec<PackageId>,
    pub created_at: Timestamp,
}

pub(super) struct GroupTrees {
    groups: sled::Tree,
    package_groups: sled::Tree,
}

impl GroupTrees {
    pub fn open(db: &sled::Db) -> Result<Self> {
        Ok(Self {
            groups: db.open_tree("groups")?,
            package_groups: db.open_tree("package_groups")?,
        })
    }
}

/// What central asks of its groups.
pub trait GroupStore {
    /// Adds a group; an existing name is a conflict.
    fn add_group(&self, group: &GroupRecord) -> Result<()>;
    fn groups(&self) -> Result<Vec<GroupRecord>>;
    fn group(&self, name: &GroupName) -> Result<Option<GroupRecord>>;
    /// Changes a group atomically; `None` if there is none.
    fn update_group(
        &self,
        name: &GroupName,
        change: &dyn Fn(&mut GroupRecord),
    ) -> Result<Option<GroupRecord>>;
    fn delete_group(&self, name: &GroupName) -> Result<bool>;

    fn add_package_group(&self, group: &PackageGroupRecord) -> Result<()>;
    fn package_groups(&self) -> Result<Vec<PackageGroupRecord>>;
    fn package_group(&self, name: &GroupName) -> Result<Option<PackageGroupRecord>>;
    fn update_package_group(
        &self,
        name: &GroupName,
        change: &dyn Fn(&mut PackageGroupRecord),
    ) -> Result<Option<PackageGroupRecord>>;
    fn delete_package_group(&self, name: &GroupName) -> Result<bool>;
}

impl SledStore {
    fn insert_new(
        &self,
        tree: &sled::Tree,
        what: &str,
        name: &GroupName,
        value: Vec<u8>,
    ) -> Result<()> {
        let swapped = tree.compare_and_swap(name.as_str(), None as Option<&[u8]>, Some(value))?;
        if swapped.is_err() {
            return Err(CentralError::Conflict(format!(
                "{what} '{name}' already exists"
            )));
        }
        self.flush()
    }

    fn remove_named(&self, tree: &sled::Tree, name: &GroupName) -> Result<bool> {
        let existed = tree.remove(name.as_str())?.is_some();
        self.flush()?;
        Ok(existed)
    }
}

impl GroupStore for SledStore {
    fn add_group(&self, group: &GroupRecord) -> Result<()> {
        self.insert_new(
            &self.group_trees.groups,
            "group",
            &group.name,
            encode(group)?,
        )
    }

    fn groups(&self) -> Result<Vec<GroupRecord>> {
        Self::all(&self.group_trees.groups)
    }

    fn group(&self, name: &GroupName) -> Result<Option<GroupRecord>> {
        Self::get(&self.group_trees.groups, name.as_str().as_bytes())
    }

    fn update_group(
        &self,
        name: &GroupName,
        change: &dyn Fn(&mut GroupRecord),
    ) -> Result<Option<GroupRecord>> {
        let updated = Self::update(&self.group_trees.groups, name.as_str(), change)?;
        self.flush()?;
        Ok(updated)
    }

    fn delete_group(&self, name: &GroupName) -> Result<bool> {
        self.remove_named(&self.group_trees.groups, name)
    }

    fn add_package_group(&self, group: &PackageGroupRecord) -> Result<()> {
        self.insert_new(
            &self.group_trees.package_groups,
            "package group",
            &group.name,
            encode(group)?,
        )
    }

    fn package_groups(&self) -> Result<Vec<PackageGroupRecord>> {
        Self::all(&self.group_trees.package_groups)
    }

    fn package_group(&self, name: &GroupName) -> Result<Option<PackageGroupRecord>> {
        Self::get(&self.group_trees.package_groups, name.as_str().as_bytes())
    }

    fn update_package_group(
        &self,
        name: &GroupName,
        change: &dyn Fn(&mut PackageGroupRecord),
    ) -> Result<Option<PackageGroupRecord>> {
        let updated = Self::update(&self.group_trees.package_groups, name.as_str(), change)?;
        self.flush()?;
        Ok(updated)
    }

    fn delete_package_group(&self, name: &GroupName) -> Result<bool> {
        self.remove_named(&self.group_trees.package_groups, name)
    }
}

//! Whether a package's download fits on this computer's disk, before each of its
//! fragments: the rest of the download, its rebuild and (at least) its unpack, with
//! agent.toml's `keep_free` left free ([`crate::space`]).

use std::path::PathBuf;

use sitecast_common::info::{Action, Info};
use sitecast_common::status::StatusCode;
use sitecast_common::wire::StatusReport;

use super::{report_with, Context, Package};

/// The `ERR_OUT_OF_SPACE` report if the rest of the download, its rebuild (a second
/// copy of the package, beside the fragments) and its unpack (at least the package's
/// size again, where the action puts it) would not fit on disk with agent.toml's
/// `keep_free` left over. Checked before every fragment, so a disk another program
/// fills meanwhile is noticed too. Free space that cannot be read does not stop a
/// download (some filesystems do not say); it is logged.
pub(super) fn short_of_space(
    ctx: &Context,
    package: &Package,
    info: &Info,
) -> Option<StatusReport> {
    let plan = info.plan();
    let remaining: u64 = (1..=plan.count())
        .filter(|n| !package.held.contains(n))
        .filter_map(|n| plan.range(n).ok())
        .map(|(_, len)| len)
        .sum();
    let target = match info.action() {
        Action::Store { path } => PathBuf::from(path),
        _ => ctx.work.clone(),
    };
    let needs = [
        (
            package.dir.as_path(),
            "the rest of the download and its rebuild",
            remaining.saturating_add(plan.size()),
        ),
        (target.as_path(), "its unpack", plan.size()),
    ];
    match ctx.space.check_all(&needs) {
        Ok(()) => None,
        Err(crate::space::SpaceError::Short(short)) => Some(report_with(
            StatusCode::ErrOutOfSpace,
            format!(
                "{short}; the {} of {} fragments already verified are kept for a retry",
                package.held.len(),
                plan.count()
            ),
        )),
        Err(e) => {
            tracing::warn!(package = %package.id(), error = %e, "cannot check free space; downloading anyway");
            None
        }
    }
}

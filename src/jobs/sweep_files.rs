//! Removes stored patch files that no patch references: the file of a draft that was
//! replaced by another upload. A file younger than a grace period is kept, so an
//! upload that has stored its bytes but not yet recorded them is not raced.

use crate::services::{patches, ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    patches::sweep_unreferenced_files(services).await
}

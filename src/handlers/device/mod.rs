//! The device protocol under `/api/v1/device`: enrolment with an enrolment token,
//! the update poll (the hot path: authenticated and answered from memory) and
//! install reports. Downloads go through the patch download route.

pub mod enroll;
pub mod poll;
pub mod report;

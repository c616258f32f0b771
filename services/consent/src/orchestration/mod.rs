//! Carrying out approved data subject requests at every service that holds personal data: a
//! durable task per service and action, a worker that retries with backoff and resumes after a
//! restart, and the request completed once every task is done.

pub mod documents;
pub mod store;
pub mod worker;

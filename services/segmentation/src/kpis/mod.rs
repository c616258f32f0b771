//! KPIs: customers active, new and churned, retention, repeat purchases, order value,
//! conversion, revenue per RFM segment, satisfaction and products, for a period.

pub mod domain;
pub mod grpc;
pub mod store;

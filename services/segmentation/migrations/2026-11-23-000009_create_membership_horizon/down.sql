DROP TABLE membership_horizon;

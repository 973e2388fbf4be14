DROP TABLE exposure_history;
DROP TABLE install_reports;
DROP TABLE device_offers;
DROP TABLE observations;
DROP TABLE device_labels;
DROP TABLE devices;
DROP TABLE enrollment_tokens;
DROP TABLE fleet_state;

ALTER TABLE install_reports DROP COLUMN last_reported_at;
ALTER TABLE install_reports DROP COLUMN times;

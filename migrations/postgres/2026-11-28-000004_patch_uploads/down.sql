DROP TABLE patch_uploads;

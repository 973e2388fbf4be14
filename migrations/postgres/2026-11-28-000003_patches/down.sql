DROP TABLE patch_advisories;
DROP TABLE patches;
DROP TABLE entitlements;

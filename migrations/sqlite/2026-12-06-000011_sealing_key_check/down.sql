DROP TABLE sealing_key_check;

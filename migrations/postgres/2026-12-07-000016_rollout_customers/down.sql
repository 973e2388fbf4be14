DROP TABLE rollout_customers;

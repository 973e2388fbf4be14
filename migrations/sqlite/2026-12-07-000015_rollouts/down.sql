DROP TABLE rollout_history;
DROP TABLE rollout_members;
DROP TABLE rollout_waves;
DROP TABLE rollouts;

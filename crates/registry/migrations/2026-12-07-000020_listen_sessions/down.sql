DROP TABLE listen_sessions;

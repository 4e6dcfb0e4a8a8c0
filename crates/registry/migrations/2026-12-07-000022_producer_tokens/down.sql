DROP TABLE producer_tokens;

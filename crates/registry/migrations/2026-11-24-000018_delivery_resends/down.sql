DROP TABLE delivery_resends;

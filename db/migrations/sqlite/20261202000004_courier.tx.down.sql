DROP TABLE courier_messages;

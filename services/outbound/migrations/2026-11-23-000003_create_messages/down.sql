DROP TABLE channel_pauses;
DROP TABLE messages;

DROP INDEX messages_by_campaign;
ALTER TABLE messages DROP CONSTRAINT messages_campaign_fk;
DROP TABLE campaign_recipients;
DROP TABLE campaigns;

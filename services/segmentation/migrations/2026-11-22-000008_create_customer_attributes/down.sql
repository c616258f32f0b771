DROP TABLE customer_attributes;

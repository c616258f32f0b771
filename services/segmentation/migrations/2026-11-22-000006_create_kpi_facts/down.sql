DROP TABLE survey_answers;
DROP TABLE product_views;
DROP TABLE order_lines;

DROP TABLE ledger;
DROP TABLE notices;
DROP TABLE purposes;

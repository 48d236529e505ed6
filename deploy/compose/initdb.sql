-- One server, one database per role: MLflow's tracking store, Dagster's instance storage, the service's prediction
-- log / keys / audit. Run once by the postgres image on an empty data volume.
CREATE DATABASE mlflow;
CREATE DATABASE dagster;
CREATE DATABASE tradeops;

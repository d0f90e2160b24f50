-- Every query on blobs finds its rows by id or by sha256, through their
-- unique indexes, so the planner needs no statistics on its columns.
-- With the default target, each ANALYZE (autovacuum runs one after
-- every 10 % of growth) sampled 30,000 rows of up to 8 KiB bodies: 0.6 s
-- of PostgreSQL's CPU at 220,000 letters, and 12.8 % of its CPU (perf)
-- in one SMTP benchmark run on a young database. With no column to analyze,
-- ANALYZE samples 100 rows and only updates the table's size estimate.
ALTER TABLE blobs
	ALTER COLUMN id SET STATISTICS 0,
	ALTER COLUMN sha256 SET STATISTICS 0,
	ALTER COLUMN size SET STATISTICS 0,
	ALTER COLUMN structure SET STATISTICS 0,
	ALTER COLUMN body SET STATISTICS 0,
	ALTER COLUMN object SET STATISTICS 0,
	ALTER COLUMN refs SET STATISTICS 0,
	ALTER COLUMN created_at SET STATISTICS 0;

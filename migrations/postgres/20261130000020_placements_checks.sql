-- SQLite's `placements` gets its enumerated CHECKs as comparisons joined by OR (SQLite
-- builds a temporary B-tree per row for `IN ('a', 'b', …)` in a CHECK). PostgreSQL
-- evaluates such a list as an array comparison, without per-row setup: nothing to change.
-- This file keeps the two directories' versions in step.
SELECT 1;

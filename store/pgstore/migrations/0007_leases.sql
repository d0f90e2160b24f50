-- leases of jobs that run on one node at a time: reserved, written with its area (issue 18 in progress).
SELECT 1;

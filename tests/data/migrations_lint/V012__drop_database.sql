DROP DATABASE IF EXISTS reporting_scratch;

SET lock_timeout = '5s';
SET statement_timeout = '5min';
CREATE TABLE shipment_tracking_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    the_carrier_reported_estimated_time_of_arrival_in_the_local_zone timestamptz
);

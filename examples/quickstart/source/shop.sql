-- The producer's side of the quickstart: the shop's tables in the `shop` database, as the model describes
-- them (team_shop.ds.hcl), with a few rows. Idempotent: `make demo` runs it every time.
CREATE TABLE IF NOT EXISTS public.customers (
    id            bigint PRIMARY KEY,
    first_name    varchar(100) NOT NULL,
    last_name     varchar(100) NOT NULL,
    email         varchar(320),
    date_of_birth date,
    loyalty_tier  smallint,
    is_active     boolean NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS public.addresses (
    id           bigint PRIMARY KEY,
    customer_id  bigint NOT NULL,
    line1        varchar(200) NOT NULL,
    city         varchar(100) NOT NULL,
    postal_code  varchar(20),
    country_code char(2) NOT NULL,
    is_primary   boolean NOT NULL
);
CREATE TABLE IF NOT EXISTS public.products (
    sku        varchar(32) PRIMARY KEY,
    name       varchar(200) NOT NULL,
    price      decimal(10,2) NOT NULL,
    currency   char(3) NOT NULL,
    in_stock   integer NOT NULL,
    updated_at timestamp
);
INSERT INTO public.customers VALUES
    (1, 'Ada', 'Lovelace', 'ada@example.com', '1815-12-10', 2, true, now()),
    (2, 'Alan', 'Turing', NULL, '1912-06-23', 1, true, now())
ON CONFLICT (id) DO NOTHING;
INSERT INTO public.addresses VALUES
    (10, 1, '12 St James''s Square', 'London', 'SW1Y 4JH', 'GB', true),
    (20, 2, 'Bletchley Park', 'Milton Keynes', 'MK3 6EB', 'GB', true)
ON CONFLICT (id) DO NOTHING;
INSERT INTO public.products VALUES
    ('SKU-1', 'Difference engine', 1999.00, 'GBP', 3, now()),
    ('SKU-2', 'Bombe', 4999.00, 'GBP', 1, now())
ON CONFLICT (sku) DO NOTHING;

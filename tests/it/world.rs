//! The CRM world the runtime tests share: users, teams, records, and canaries in
//! every field someone may not read.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::store::ready;
use crate::util::*;

pub struct World {
    pub env: Env,
    pub server: Server,
    /// user label → API key
    pub keys: BTreeMap<&'static str, String>,
    /// record label → id
    pub ids: BTreeMap<&'static str, String>,
}

pub const CANARY_NOTE: &str = "CANARY-NOTE-7f3a";
pub const CANARY_TOKEN: &str = "CANARY-TOKEN-91bc";
pub const CANARY_CREDIT: f64 = 987654.321;
pub const CANARY_PROBABILITY: f64 = 42.4242;
pub const SECRET_DEAL_A: &str = "SECRET-DEAL-OF-A";
pub const SECRET_DEAL_B: &str = "SECRET-DEAL-OF-B";
pub const SECRET_DEAL_G: &str = "SECRET-DEAL-OF-GLOBEX";

pub const USERS: &[(&str, &str)] = &[
    ("rep_a", "rep.a@example.com"),
    ("rep_b", "rep.b@example.com"),
    ("manager", "manager@example.com"),
    ("fin", "fin@example.com"),
    ("auditor", "auditor@example.com"),
    ("admin", "admin@example.com"),
    ("other", "other@globex.com"),
    ("disabled", "gone@example.com"),
    ("controller", "controller@example.com"),
    ("nobody", "nobody@example.com"),
];

impl World {
    pub fn build() -> World {
        let env = Env::new();
        let admin_key = ready(&env);
        let cli = |args: &[&str]| env.run(args).ok();
        cli(&["org", "add", "globex"]);
        for (label, email) in USERS {
            if *label == "admin" {
                continue;
            }
            let mut args = vec!["user", "add", email, "--no-password"];
            if *label == "other" {
                args.extend(["--org", "globex"]);
            }
            cli(&args);
        }
        for (set, label) in [
            ("sales_rep", "rep_a"),
            ("sales_rep", "rep_b"),
            ("sales_manager", "manager"),
            ("finance", "fin"),
            ("auditor", "auditor"),
            ("sales_rep", "disabled"),
            ("finance", "controller"),
        ] {
            cli(&["permset", "assign", set, email(label)]);
        }
        cli(&[
            "permset",
            "assign",
            "sales_rep",
            "other@globex.com",
            "--org",
            "globex",
        ]);
        cli(&["team", "add", "finance"]);
        cli(&["team", "add-member", "finance", "fin@example.com"]);
        cli(&["team", "add", "emea_sales_lead"]);
        let mut keys = BTreeMap::new();
        keys.insert("admin", admin_key);
        for (label, email) in USERS {
            if *label == "admin" {
                continue;
            }
            let key = env
                .run(&["apikey", "create", email])
                .ok()
                .stdout
                .trim()
                .to_string();
            keys.insert(*label, key);
        }
        cli(&["user", "disable", "gone@example.com"]);
        let server = Server::start(&env);
        let mut world = World {
            env,
            server,
            keys,
            ids: BTreeMap::new(),
        };
        world.seed();
        world
    }

    pub fn key(&self, user: &str) -> &str {
        self.keys
            .get(user)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no user {user}"))
    }

    pub fn id(&self, record: &str) -> &str {
        self.ids
            .get(record)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no record {record}"))
    }

    pub fn call(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        self.server.call(method, path, Some(self.key(user)), body)
    }

    pub fn create(&mut self, user: &str, object: &str, label: &'static str, body: Value) {
        let (status, json, raw) =
            self.call(user, "POST", &format!("/api/v1/data/{object}"), Some(body));
        assert_eq!(status, 201, "{user} creating {label}: {raw}");
        self.ids
            .insert(label, json["id"].as_str().unwrap().to_string());
    }

    fn seed(&mut self) {
        self.create(
            "rep_a",
            "crm_account",
            "account_a",
            json!({"name": "Acme", "account_number": "A-1", "industry": "technology"}),
        );
        self.create(
            "rep_a",
            "crm_account",
            "account_a_fin",
            json!({"name": "Bank of A", "account_number": "A-2", "industry": "finance"}),
        );
        self.create(
            "rep_b",
            "crm_account",
            "account_b",
            json!({"name": "Beta", "account_number": "B-1"}),
        );
        self.create("rep_a", "crm_opportunity", "opp_a", json!({"name": SECRET_DEAL_A, "amount": 5000, "stage": "proposal", "region": "amer", "account": self.ids["account_a"]}));
        self.create("rep_a", "crm_opportunity", "opp_a_won", json!({"name": "Won deal of A", "amount": 70000, "stage": "closed_won", "region": "amer"}));
        self.create("rep_b", "crm_opportunity", "opp_b", json!({"name": SECRET_DEAL_B, "amount": 9000, "stage": "negotiation", "region": "apac"}));
        self.create(
            "other",
            "crm_opportunity",
            "opp_g",
            json!({"name": SECRET_DEAL_G, "amount": 1, "stage": "proposal"}),
        );
        self.create(
            "rep_a",
            "crm_contact",
            "contact_a",
            json!({"last_name": "Smith", "email": "smith@acme.example"}),
        );
        self.create(
            "rep_a",
            "crm_opportunity_line",
            "line_a",
            json!({"opportunity": self.ids["opp_a"], "quantity": 3, "unit_price": 10}),
        );
        // Canaries, written behind the API (nobody may write some of these fields).
        sql(
            &self.env.db(),
            &format!(
                "UPDATE rec_crm_opportunity SET discount_approval_note = '{CANARY_NOTE}', probability = {CANARY_PROBABILITY};
                 UPDATE rec_crm_account SET integration_token = '{CANARY_TOKEN}', credit_limit = {CANARY_CREDIT};
                 INSERT INTO rec_crm_fx_rate (id, organization_id, created_at, updated_at, currency, rate) SELECT 'fx1', organization_id, created_at, updated_at, 'USD', 1.08 FROM rec_crm_account LIMIT 1;"
            ),
        );
        // Rows made behind the API have no label of their own.
        self.ids.insert("fx1", "fx1".to_string());
        self.assert_canaries_in_place();
    }

    /// Every place `seed` put a canary: (table, record label, column, the value as
    /// `sql_query` renders it).
    pub fn canary_cells(&self) -> Vec<(&'static str, &'static str, &'static str, String)> {
        let mut cells = Vec::new();
        for opp in ["opp_a", "opp_a_won", "opp_b", "opp_g"] {
            cells.push((
                "rec_crm_opportunity",
                opp,
                "discount_approval_note",
                CANARY_NOTE.to_string(),
            ));
            cells.push((
                "rec_crm_opportunity",
                opp,
                "probability",
                CANARY_PROBABILITY.to_string(),
            ));
        }
        for (opp, name) in [
            ("opp_a", SECRET_DEAL_A),
            ("opp_b", SECRET_DEAL_B),
            ("opp_g", SECRET_DEAL_G),
        ] {
            cells.push(("rec_crm_opportunity", opp, "name", name.to_string()));
        }
        for account in ["account_a", "account_a_fin", "account_b"] {
            cells.push((
                "rec_crm_account",
                account,
                "integration_token",
                CANARY_TOKEN.to_string(),
            ));
            cells.push((
                "rec_crm_account",
                account,
                "credit_limit",
                CANARY_CREDIT.to_string(),
            ));
        }
        cells
    }

    /// Read the database directly: every canary is still stored where `seed` put
    /// it, so a test cannot pass because a canary was gone before anyone looked.
    #[track_caller]
    pub fn assert_canaries_in_place(&self) {
        for (table, label, column, expected) in self.canary_cells() {
            let id = self.id(label);
            let rows = sql_query(
                &self.env.db(),
                &format!("SELECT {column} FROM {table} WHERE id = '{id}'"),
            );
            assert_eq!(
                rows,
                vec![vec![expected.clone()]],
                "{table}.{column} of {label} ({id}) no longer holds its canary"
            );
        }
    }
}

pub fn email(label: &str) -> &'static str {
    USERS
        .iter()
        .find(|(l, _)| *l == label)
        .map(|(_, e)| *e)
        .unwrap_or_else(|| panic!("no user {label}"))
}

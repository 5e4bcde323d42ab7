//! The data set both servers get: users and deterministic opportunities.
//!
//! Record `i` belongs to user `i % users`; its stage, amount, region and date
//! come from a hash of `i`, so every user has deals of every stage and both
//! servers hold exactly the same rows. One record in ten is `closed_won`.

/// Who the users are; the records are computed from their index.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub users: Vec<String>,
    pub manager: String,
    pub password: String,
}

/// One opportunity, as both servers store it.
#[derive(Debug, Clone)]
pub struct Deal {
    pub owner: usize,
    pub name: String,
    pub amount: u64,
    pub stage: &'static str,
    pub region: &'static str,
    pub close_date: String,
    pub discount_note: String,
}

impl Dataset {
    pub fn new(users: usize) -> Dataset {
        Dataset {
            users: (0..users)
                .map(|i| format!("rep{i:02}@bench.example"))
                .collect(),
            manager: "manager@bench.example".to_string(),
            // Only for PocketBase's users (objectos's reps sign in with API keys).
            password: "bench-password-1234".to_string(),
        }
    }

    pub fn deal(&self, i: usize) -> Deal {
        let h = mix(i as u64);
        // 10% closed_won, then 30 / 25 / 20 / 15.
        let stage = match h % 20 {
            0 | 1 => "closed_won",
            2..=7 => "prospecting",
            8..=12 => "proposal",
            13..=16 => "negotiation",
            _ => "closed_lost",
        };
        let region = ["amer", "emea", "apac"][((h >> 8) % 3) as usize];
        let amount = ((h >> 16) % 1_000_000) + 100;
        let day = ((h >> 40) % 365) as i64;
        let date = time::Date::from_calendar_date(2026, time::Month::January, 1)
            .expect("a valid date")
            + time::Duration::days(day);
        Deal {
            owner: i % self.users.len(),
            name: format!("Deal {i}"),
            amount,
            stage,
            region,
            close_date: format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            ),
            discount_note: format!("Discount of {}% agreed with procurement", (h >> 24) % 30),
        }
    }
}

/// splitmix64: a cheap, well-spread hash of the record index.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

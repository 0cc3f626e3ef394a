//! Fills a SQLite capture database with realistic captured interactions and
//! feedback, for benchmarks and demos of dataset building (`curate`).
//!
//! Rows are shaped exactly like the gateway's own: chat requests as clients
//! send them (with the placeholders the redactor writes, such as `<EMAIL>`),
//! OpenAI `chat.completion` answers (stream answers in the gateway's assembled,
//! key-sorted form), upstream errors and timeouts with the bodies the gateway
//! keeps, and feedback rows validated by `flywheel::feedback::parse`, so their
//! labels, scores, scales and request hashes are the gateway's.
//!
//! The mix (per interaction): about 1% embeddings, 2% failed calls (500 and
//! 504), 3% tool-call answers, 5% multi-turn conversations, 2% answers cut at
//! `max_tokens`, 1% refusals; a fifth of prompts repeat exactly (a popular
//! pool whose size grows with `--rows`, so the share holds at any scale) and
//! about 8% are near duplicates (one word changed in a long prompt). Feedback
//! lands on about 35% of interactions: thumbs (25%, 70% up), ratings,
//! corrections (a better answer), outcomes and comments. Repeated prompts get
//! good and bad answers, so thumbs-up and thumbs-down pairs exist for DPO.
//!
//! Everything is drawn from one splitmix64 stream seeded by `--seed`; only the
//! end of the time window defaults to the wall clock (pin it with `--until-ms`
//! for byte-identical databases).
//!
//! Run: cargo run --release --example seed -- --db /tmp/seed.db --rows 1000000

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use flywheel::privacy::UserHasher;
use flywheel::store::sqlite::SqliteStore;
use flywheel::store::{FeedbackRow, FeedbackStore, InteractionRow, InteractionStore};

/// Interactions per `insert_interactions` call (one transaction each).
const BATCH: usize = 4_000;
const PROGRESS_EVERY: u64 = 100_000;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

// The mix, as shares of all interactions.
const EMBEDDINGS: f64 = 0.01;
const FAILED: f64 = 0.02;
/// Of the failed calls, the share that are upstream 500s (the rest time out).
const FAILED_500: f64 = 0.6;
const TOOL_CALLS: f64 = 0.03;
/// A tool result sent back for the final answer (not asked for, but real
/// tool traffic always has this second step).
const TOOL_FOLLOW_UPS: f64 = 0.01;
const MULTI_TURN: f64 = 0.05;
const TRUNCATED: f64 = 0.02;
const REFUSALS: f64 = 0.01;
/// Prompts drawn from the route's popular pool (exact duplicates).
const POPULAR: f64 = 0.19;
/// Long prompts asked about twice, mostly with one word changed (near duplicates).
const NEAR_DUPLICATE: f64 = 0.08;
/// Chat calls that stream (the gateway stores the assembled response).
const STREAMED: f64 = 0.35;
/// Calls that carry a user id (`x-flywheel-user`), stored as its keyed hash.
const USER_ID_SHARE: f64 = 0.92;

/// Answers that deserve a thumbs-up, by version: v2 is the better fine-tune.
const GOOD_V1: f64 = 0.82;
const GOOD_V2: f64 = 0.90;

#[derive(Parser, Debug)]
#[command(
    name = "seed",
    about = "Fill a SQLite capture database with realistic interactions and feedback",
    long_about = "Fill a SQLite capture database with realistic captured interactions and \
feedback (the gateway's own row shapes), for benchmarks and demos of dataset building.\n\n\
Output is determined by --seed and --until-ms; without --until-ms the time window ends now.\n\
Exit code 2 means bad arguments."
)]
struct Args {
    /// SQLite file to create; it must not exist yet
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Interactions to write (feedback rows come on top, about 35% of this)
    #[arg(long, value_name = "N")]
    rows: u64,
    /// Seed of the generator: the same seed (and --until-ms) gives the same database
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Comma-separated route names (the model names apps call); traffic falls
    /// off by position, and names containing support, sales or it/helpdesk
    /// pick that domain's content
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "support-bot,sales-bot",
        value_name = "A,B"
    )]
    routes: Vec<String>,
    /// Length of the time window, in days, ending at --until-ms
    #[arg(long, default_value_t = 7, value_name = "DAYS")]
    days: u32,
    /// End of the time window, unix milliseconds [default: now]
    #[arg(long, value_name = "MS")]
    until_ms: Option<i64>,
}

/// Why the arguments cannot be used, as a message that says how to fix them.
fn validate(a: &Args) -> Result<(), String> {
    if a.rows == 0 {
        return Err("--rows must be at least 1".into());
    }
    if a.days == 0 || a.days > 3650 {
        return Err("--days must be between 1 and 3650".into());
    }
    // Every interaction gets its own millisecond so that ids sort strictly.
    if a.rows > u64::from(a.days) * DAY_MS as u64 / 2 {
        return Err(format!(
            "--rows {} do not fit in {} days at one row per 2 ms; raise --days",
            a.rows, a.days
        ));
    }
    if a.routes.is_empty() {
        return Err("--routes needs at least one name".into());
    }
    for (i, r) in a.routes.iter().enumerate() {
        let ok = !r.is_empty()
            && r.len() <= 64
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(format!(
                "route name {r:?} is invalid: use 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        if a.routes[..i].contains(r) {
            return Err(format!("route {r:?} is listed twice"));
        }
    }
    if a.until_ms.is_some_and(|u| u < i64::from(a.days) * DAY_MS) {
        return Err(
            "--until-ms puts the window start before 1970; give a unix time in milliseconds".into(),
        );
    }
    if a.db.exists() {
        return Err(format!(
            "{} already exists; the seeder only creates new databases, so delete it or pick another path",
            a.db.display()
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = validate(&args) {
        Args::command()
            .error(ErrorKind::ValueValidation, message)
            .exit();
    }
    let until_ms = args.until_ms.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    });
    let store = match SqliteStore::open(&args.db) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("seed: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "seed: writing {} interactions over {} days to {} (routes {}, seed {}, until-ms {until_ms})",
        args.rows,
        args.days,
        args.db.display(),
        args.routes.join(","),
        args.seed,
    );

    // Generation runs on its own thread, a few batches ahead of the writer, so
    // the two cores overlap JSON building with SQLite work. The generator alone
    // draws random numbers, in row order, so the output stays deterministic.
    let (tx, rx) = sync_channel::<Batch>(4);
    let total = args.rows;
    let mut generator = Generator::new(&args, until_ms);
    let producer = std::thread::Builder::new()
        .name("seed-generator".into())
        .spawn(move || {
            let mut done = 0;
            while done < total {
                let n = BATCH.min((total - done) as usize);
                if tx.send(generator.batch(n)).is_err() {
                    return;
                }
                done += n as u64;
            }
        })
        .expect("the generator thread starts");

    let started = Instant::now();
    let (mut rows, mut feedback) = (0u64, 0u64);
    let (mut in_rows, mut in_feedback) = (Duration::ZERO, Duration::ZERO);
    for batch in rx {
        let t = Instant::now();
        if let Err(e) = store.insert_interactions(&batch.rows) {
            eprintln!("seed: writing interactions failed: {e}");
            return ExitCode::FAILURE;
        }
        in_rows += t.elapsed();
        // The store takes feedback one row per transaction, as the API does.
        let t = Instant::now();
        for f in &batch.feedback {
            if let Err(e) = store.insert_feedback(f) {
                eprintln!("seed: writing feedback failed: {e}");
                return ExitCode::FAILURE;
            }
        }
        in_feedback += t.elapsed();
        let before = rows;
        rows += batch.rows.len() as u64;
        feedback += batch.feedback.len() as u64;
        if rows / PROGRESS_EVERY > before / PROGRESS_EVERY {
            eprintln!(
                "seed: {rows}/{total} interactions, {feedback} feedback, {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    if producer.join().is_err() {
        eprintln!("seed: the generator thread panicked");
        return ExitCode::FAILURE;
    }
    // Closing the store checkpoints the WAL into the main file.
    drop(store);
    let secs = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&args.db).map_or(0, |m| m.len());
    eprintln!(
        "seed: done: {rows} interactions, {feedback} feedback rows in {secs:.1} s ({:.0} rows/s)",
        rows as f64 / secs
    );
    eprintln!(
        "seed: store time: interactions {:.1} s, feedback {:.1} s; database {:.1} MB",
        in_rows.as_secs_f64(),
        in_feedback.as_secs_f64(),
        size as f64 / 1e6
    );
    ExitCode::SUCCESS
}

struct Batch {
    rows: Vec<InteractionRow>,
    feedback: Vec<FeedbackRow>,
}

// ---------------------------------------------------------------------------
// Randomness.

/// One step of splitmix64 from state `x`: the output for state `x + golden`.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// splitmix64 as a stream: tiny, fast and good enough for synthetic data.
struct Rng(u64);

impl Rng {
    /// A stream for one named purpose, independent of the main stream, so a
    /// pool prompt comes out the same whenever it is drawn.
    fn derived(parts: &[u64]) -> Rng {
        Rng(parts.iter().fold(0x5eed, |h, p| splitmix64(h ^ p)))
    }

    fn next_u64(&mut self) -> u64 {
        let x = self.0;
        self.0 = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix64(x)
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below((hi - lo + 1) as usize) as u32
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Log-uniform in [lo, hi): delays spread over orders of magnitude.
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let x = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
        out
    }

    fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n).map(|_| A[self.below(A.len())] as char).collect()
    }

    fn hex(&mut self, n: usize) -> String {
        const H: &[u8] = b"0123456789abcdef";
        (0..n).map(|_| H[self.below(16)] as char).collect()
    }

    /// A UUIDv7 for `ms`: ids made in increasing milliseconds sort in order.
    fn uuid_v7(&mut self, ms: i64) -> String {
        uuid::Builder::from_unix_timestamp_millis(ms as u64, &self.bytes::<10>())
            .into_uuid()
            .to_string()
    }

    fn uuid_v4(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.bytes::<16>())
            .into_uuid()
            .to_string()
    }
}

// ---------------------------------------------------------------------------
// Time: increasing timestamps with a daily and weekly rhythm.

/// Traffic by hour of day (UTC), relative to the busiest hour.
const HOURLY: [f64; 24] = [
    0.30, 0.25, 0.22, 0.20, 0.20, 0.25, 0.35, 0.50, 0.70, 0.85, 0.95, 1.00, 1.00, 0.98, 0.97, 0.95,
    0.90, 0.85, 0.75, 0.65, 0.55, 0.48, 0.40, 0.35,
];

/// Places row i of n at quantile (i + u) / n of the traffic curve, so times
/// increase with i, then keeps each at least 1 ms after the previous one.
struct Clock {
    start_ms: i64,
    /// Cumulative traffic at the start of each hour of the window.
    cum: Vec<f64>,
    hour: usize,
    last_ms: i64,
    n: f64,
}

impl Clock {
    fn new(until_ms: i64, days: u32, n: u64) -> Clock {
        let start_ms = until_ms - i64::from(days) * DAY_MS;
        let hours = days as usize * 24;
        let mut cum = Vec::with_capacity(hours + 1);
        cum.push(0.0);
        for h in 0..hours {
            let at = start_ms + h as i64 * HOUR_MS;
            let hour_of_day = (at.rem_euclid(DAY_MS) / HOUR_MS) as usize;
            // 1970-01-01 was a Thursday: day + 4 mod 7 is 0 on Sundays.
            let weekday = (at.div_euclid(DAY_MS) + 4).rem_euclid(7);
            let weekend = if weekday == 0 || weekday == 6 {
                0.55
            } else {
                1.0
            };
            cum.push(cum[h] + HOURLY[hour_of_day] * weekend);
        }
        Clock {
            start_ms,
            cum,
            hour: 0,
            last_ms: start_ms,
            n: n as f64,
        }
    }

    fn at(&mut self, i: u64, u: f64) -> i64 {
        let total = *self.cum.last().unwrap_or(&1.0);
        let q = (i as f64 + u) / self.n * total;
        while self.hour + 2 < self.cum.len() && self.cum[self.hour + 1] <= q {
            self.hour += 1;
        }
        let (a, b) = (self.cum[self.hour], self.cum[self.hour + 1]);
        let frac = ((q - a) / (b - a)).clamp(0.0, 1.0);
        let t = self.start_ms + ((self.hour as f64 + frac) * HOUR_MS as f64) as i64;
        self.last_ms = t.max(self.last_ms + 1);
        self.last_ms
    }
}

/// The calendar year of a unix time (for ISO dates in tool arguments).
fn year_of(ms: i64) -> i64 {
    // Howard Hinnant's civil_from_days, reduced to the year.
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    yoe + era * 400 + i64::from(mp >= 10)
}

// ---------------------------------------------------------------------------
// Content: three domains, each with intents (questions and good answers),
// filler sentences, bad answers, refusal prompts and tools.

struct Domain {
    system: &'static str,
    apps: &'static [&'static str],
    intents: &'static [Intent],
    /// Sentences with the asker's specifics; they make most questions unique.
    details: &'static [&'static str],
    contexts: &'static [&'static str],
    fillers: &'static [&'static str],
    bad: &'static [&'static str],
    refusal_asks: &'static [&'static str],
    closers: &'static [&'static str],
    /// The tool definitions clients send, as one JSON array.
    tools: &'static str,
}

struct Intent {
    asks: &'static [&'static str],
    answers: &'static [&'static str],
    tool: Option<ToolUse>,
}

/// A tool the model calls for an intent: its name, its arguments and what
/// the client sends back, as templates.
struct ToolUse {
    name: &'static str,
    args: &'static str,
    result: &'static str,
}

const fn i(asks: &'static [&'static str], answers: &'static [&'static str]) -> Intent {
    Intent {
        asks,
        answers,
        tool: None,
    }
}

const fn t(
    asks: &'static [&'static str],
    answers: &'static [&'static str],
    name: &'static str,
    args: &'static str,
    result: &'static str,
) -> Intent {
    Intent {
        asks,
        answers,
        tool: Some(ToolUse { name, args, result }),
    }
}

const LOOKUP_ORDER: (&str, &str, &str) = (
    "lookup_order",
    r#"{"order_id":"{order}"}"#,
    r#"{"order_id":"{order}","status":"shipped","carrier":"{carrier}","items":["{product}"],"eta":"{isodate}"}"#,
);

static SUPPORT: Domain = Domain {
    system: "You are Ava, the customer support assistant for Acme Electronics. Answer questions about orders, shipping, returns, warranties and accounts. Be concise, friendly and accurate. Never invent order details: call a tool when you need live order or stock data. If a request is unsafe or concerns another customer's data, politely decline. Policies: 30-day returns, free standard shipping over $50, 2-year warranty on all devices, refunds to the original payment method.",
    apps: &["help-widget", "mobile-app", "zendesk-bridge"],
    intents: &[
        t(
            &[
                "Where is my order {order}?",
                "Can you check the status of order {order}? I ordered the {product} on {date}.",
                "My order {order} has said \"processing\" for {days} days. When will it ship?",
            ],
            &[
                "I checked order {order}: your {product} has left our warehouse and is on its way with {carrier}. You should receive it within {n} business days.",
                "Order {order} is packed and will be handed to {carrier} within one business day. You'll get a tracking link by email as soon as it ships.",
            ],
            LOOKUP_ORDER.0,
            LOOKUP_ORDER.1,
            LOOKUP_ORDER.2,
        ),
        t(
            &[
                "My {product} was supposed to arrive on {date} but it never came.",
                "The tracking for order {order} hasn't updated in {days} days. Is my package lost?",
            ],
            &[
                "I'm sorry your {product} is late. Tracking for {order} shows it is held at the {carrier} hub near {city}; if it hasn't moved in two more business days we will send a replacement at no cost.",
                "Sorry about the wait. When tracking stops updating for more than five business days we open an investigation with {carrier} and offer you a replacement or a full refund, whichever you prefer.",
            ],
            LOOKUP_ORDER.0,
            LOOKUP_ORDER.1,
            LOOKUP_ORDER.2,
        ),
        i(
            &[
                "I need to change the delivery address for order {order} to my new place in {city}.",
                "Can I still update the shipping address on order {order}? I'm moving next week.",
            ],
            &[
                "Yes, as long as order {order} hasn't shipped you can change the address under Orders, Edit delivery. If it has already shipped, {carrier} lets you redirect the parcel from the tracking page.",
                "Order {order} has not shipped yet, so I can update the address for you. Please confirm the full new address in {city}, including the apartment number.",
            ],
        ),
        i(
            &[
                "Please cancel order {order}.",
                "I ordered the wrong {product}. Can I cancel before it ships?",
            ],
            &[
                "Done: order {order} is cancelled and the {amount} will be back on your original payment method within 3 to 5 business days.",
                "You can cancel any order that hasn't shipped from Orders, Cancel order. If the {product} has already shipped, refuse the delivery or start a free return once it arrives.",
            ],
        ),
        t(
            &[
                "How do I return my {product}?",
                "I want to return the {product} from order {order}, it doesn't fit my needs.",
                "What's your return policy for opened items like the {product}?",
            ],
            &[
                "You can return the {product} within 30 days of delivery, even if it's opened. Start the return under Orders, Return item, print the prepaid label and drop the parcel at any {carrier} point.",
                "Returns are free within 30 days. I've created a return for the {product}; the prepaid label is in your inbox and the refund is issued as soon as the item is scanned at our warehouse.",
            ],
            "create_return",
            r#"{"order_id":"{order}","reason":"{reason}"}"#,
            r#"{"return_id":"RT-{ticket}","status":"label_created","label_url":"https://returns.acme.example/RT-{ticket}"}"#,
        ),
        i(
            &[
                "When will I get my refund for order {order}?",
                "I returned a {product} {days} days ago and still don't have my refund of {amount}.",
            ],
            &[
                "Refunds are issued as soon as the return is scanned at our warehouse, which usually takes 3 to 5 business days after you ship it. Your bank may need another 2 to 5 days to show the {amount}.",
                "I can see the return for order {order} arrived at our warehouse. The refund of {amount} was issued today, so it should appear on your statement within 5 business days.",
            ],
        ),
        i(
            &[
                "My {product} arrived with a cracked screen.",
                "The box was crushed and the {product} inside is damaged. What should I do?",
            ],
            &[
                "I'm sorry the {product} arrived damaged. Please send a photo of the item and the box by replying here, and we'll ship a replacement right away; you don't need to return the damaged one first.",
                "That shouldn't happen. Damage in transit is always covered: choose Orders, Report a problem, add a photo, and pick a replacement or a full refund.",
            ],
        ),
        i(
            &[
                "I received a {product2} instead of the {product} I ordered.",
                "Wrong item in my package for order {order}. I ordered the {product}.",
            ],
            &[
                "Sorry for the mix-up! I've arranged for the correct {product} to ship today with express delivery. A prepaid label for the {product2} is in your email; please send it back within 30 days.",
                "Apologies for that. Please keep the packaging; we'll send the {product} you ordered right away and {carrier} will pick up the wrong item at no cost to you.",
            ],
        ),
        i(
            &[
                "Is my {product} still under warranty? I bought it in {month}.",
                "My {product} stopped charging after {months} months. Does the warranty cover that?",
            ],
            &[
                "All our devices come with a 2-year warranty from the delivery date, so your {product} is covered. Start a claim under Orders, Warranty and we'll send a prepaid label for the repair.",
                "Yes, a charging fault after {months} months is covered by the 2-year warranty. We'll repair or replace the {product} free of charge; repairs usually take 7 to 10 days.",
            ],
        ),
        i(
            &[
                "How do I reset my password?",
                "I forgot my password and the reset email never arrives. My email is {email}.",
            ],
            &[
                "Go to the sign-in page, choose Forgot password and enter your account email. The reset link is valid for one hour; if it doesn't arrive within a few minutes, check your spam folder.",
                "I've sent a new password reset link to {email}. It expires in one hour. If it still doesn't arrive, add our support address to your contacts and try again.",
            ],
        ),
        i(
            &[
                "How can I change the email address on my account from {email} to a new one?",
                "I want to use a different email for my Acme account.",
            ],
            &[
                "Open Account, Profile, Email, enter the new address and confirm it with the code we send there. Your order history and points stay with the account.",
                "You can change it yourself under Account, Profile. We'll send a confirmation code to the new address, and the old one stops receiving order emails once you confirm.",
            ],
        ),
        i(
            &[
                "Please delete my account and all my data.",
                "How do I close my Acme account?",
            ],
            &[
                "You can delete your account under Account, Privacy, Delete account. We remove your personal data within 30 days, except invoices we must keep for tax purposes.",
                "I can start that for you. Open orders and unused gift card balances are lost when the account is deleted, so please confirm and I'll send the final confirmation link.",
            ],
        ),
        i(
            &[
                "My payment keeps failing with the card {card}.",
                "Why was my card declined at checkout? I tried three times.",
            ],
            &[
                "Declines usually come from the bank: a wrong billing address, an expired card or a security hold. Check that the billing address matches your bank's records or try another payment method such as PayPal.",
                "We don't see an error on our side, so the bank most likely blocked the payment. Calling the number on the back of your card usually clears the hold within minutes.",
            ],
        ),
        i(
            &[
                "I was charged twice for order {order}. Please refund one of the charges of {amount}.",
                "Why do I see two payments for my {product}?",
            ],
            &[
                "I looked at order {order}: one of the two charges of {amount} is only a pending authorisation, which your bank will release within 3 to 7 days. You will only be billed once.",
                "You're right, the payment for order {order} was captured twice. I've refunded the duplicate {amount}; it should reach your account within 5 business days.",
            ],
        ),
        i(
            &[
                "Can I get an invoice for order {order} with my company name on it?",
                "Where do I download the invoice for my {product}?",
            ],
            &[
                "Invoices are available under Orders, Download invoice. To add a company name and VAT number, edit the billing details there before downloading.",
                "I've regenerated the invoice for order {order} with your company details; you can download it from the order page as a PDF.",
            ],
        ),
        i(
            &[
                "The promo code {promo} doesn't work at checkout.",
                "Is there a discount code for the {product}?",
            ],
            &[
                "The code {promo} is valid for full-price items only and can't be combined with other offers, which is the most common reason it is rejected.",
                "There is no code for the {product} right now, but Acme Plus members get 5% back on every order and free express shipping.",
            ],
        ),
        i(
            &["I saw the {product} for {amount} at another store. Do you price match?"],
            &[
                "Yes, we match the price of major retailers for identical items in stock. Send us the link to the offer for the {product} and we'll adjust your price or refund the difference within 14 days of purchase.",
                "We do price match. If you already bought the {product}, send us the competitor's offer within 14 days and we'll refund the difference to your original payment method.",
            ],
        ),
        t(
            &[
                "When will the {product} be back in stock?",
                "Is the {product} available in the {city} store?",
            ],
            &[
                "The {product} is expected back in stock within {n} weeks. Tap Notify me on the product page and we'll email you the moment it's available.",
                "The {city} store has the {product} in stock today; you can reserve it online and pick it up in two hours.",
            ],
            "check_stock",
            r#"{"product":"{product}","city":"{city}"}"#,
            r#"{"product":"{product}","city":"{city}","in_stock":true,"quantity":{qty}}"#,
        ),
        i(
            &["How much is shipping to {city}?", "Do you ship internationally?"],
            &[
                "Standard shipping is free on orders over $50 and $4.99 below that. Express delivery to {city} costs $12.99 and arrives in 1 to 2 business days.",
                "We ship to 28 countries in Europe and North America. Duties are included in the price at checkout, so there are no surprises on delivery.",
            ],
        ),
        i(
            &["Can I upgrade order {order} to express shipping?"],
            &[
                "Yes, order {order} hasn't left the warehouse yet, so I've upgraded it to express for $12.99. It will arrive within 1 to 2 business days.",
                "Express upgrades are possible until the order is packed. Open Orders, Delivery options and pick Express; the difference is charged to the same payment method.",
            ],
        ),
        i(
            &[
                "How do I pair my {product} with my phone?",
                "The {product} won't connect to Wi-Fi. How do I set it up?",
            ],
            &[
                "Turn on Bluetooth on your phone, then hold the power button of the {product} for five seconds until the light blinks blue. Open the Acme app, tap Add device and follow the steps.",
                "Make sure your router uses the 2.4 GHz band, which the {product} needs for setup. Restart the {product}, open the Acme app and choose Add device; it finds the network automatically.",
            ],
        ),
        i(
            &["How do I update the firmware on my {product}?"],
            &[
                "Open the Acme app, select the {product} and tap Settings, Firmware. Keep the device charged above 50% and don't turn it off until the update finishes, which takes about ten minutes.",
                "Updates install automatically overnight when the {product} is charging and connected. To update now, open the Acme app and choose Check for updates.",
            ],
        ),
        i(
            &["The battery on my {product} drains really fast. Is that normal?"],
            &[
                "It isn't. Turn off always-on display and background sync in the Acme app, then fully charge the {product} once; if it still lasts less than a day, it qualifies for a free battery replacement under warranty.",
                "A fast drain is usually caused by an app running in the background. Update the firmware and restart the {product}; if nothing improves after two days we'll replace it under warranty.",
            ],
        ),
        i(
            &["How do I redeem a gift card?", "Can I use two gift cards on one order?"],
            &[
                "Enter the gift card code at checkout under Payment, Gift card. You can combine up to three gift cards on one order and pay any remainder with another method.",
                "Add the code under Account, Gift cards to store the balance; it is then applied automatically at checkout. Gift cards never expire.",
            ],
        ),
        i(
            &["How do I cancel my Acme Plus membership?", "What does Acme Plus include?"],
            &[
                "Acme Plus includes free express shipping, 5% back on every order and an extra year of warranty. You can cancel at any time under Account, Membership, and it stays active until the end of the paid period.",
                "Cancel under Account, Membership, Cancel. If you cancel within 14 days of joining and haven't used the benefits, we refund the fee in full.",
            ],
        ),
        i(
            &[
                "What are the opening hours of your {city} store?",
                "Is the {city} store open on Sunday?",
            ],
            &[
                "The {city} store is open Monday to Saturday from 9 am to 8 pm and on Sundays from 11 am to 5 pm.",
                "Our {city} store opens at 9 am on weekdays and closes at 8 pm. Holiday hours are listed on the store page.",
            ],
        ),
        i(
            &["Can I pick up order {order} in the {city} store instead?"],
            &[
                "Yes. I've switched order {order} to pickup in {city}; you'll get a message when it's ready, usually within two days. Bring the order number and an ID.",
                "Pickup can only be chosen before an order ships. Order {order} hasn't shipped, so you can change it under Orders, Delivery options, Pick up in store.",
            ],
        ),
        i(
            &["I want to talk to a real person.", "Can someone call me back at {phone}?"],
            &[
                "Of course. Our support team is available by phone from 8 am to 8 pm on weekdays; I've added a note to your case so you don't have to repeat anything.",
                "I've requested a callback to {phone}; an agent will call you within the next two hours during opening times.",
            ],
        ),
        i(
            &["Can I trade in my old {product} for credit?"],
            &[
                "Yes, our trade-in program accepts the {product}. Get an instant quote under Trade-in, ship it with the free label, and the credit is added to your account after inspection.",
                "We take the {product} for trade-in if it powers on and the screen isn't broken. The quote is confirmed within three days of receiving it.",
            ],
        ),
        i(
            &["What's the difference between the {product} and the {product2}?"],
            &[
                "The {product} focuses on battery life and a lighter design, while the {product2} has the better display and more storage. Both come with the same 2-year warranty.",
                "The main differences are size and price: the {product2} is larger and costs more, the {product} is easier to carry. The comparison tab on either product page lists every spec side by side.",
            ],
        ),
        i(
            &[
                "Which charger works with the {product}?",
                "The {product} came without the charging cable.",
            ],
            &[
                "The {product} charges over USB-C with any 20 W or stronger adapter. The official Acme 30 W charger charges it fully in about 90 minutes.",
                "Sorry about the missing cable. I've sent a replacement USB-C cable free of charge; it should arrive within {n} business days.",
            ],
        ),
        i(
            &[
                "I want to order {qty} units of the {product} for my office. Is there a bulk discount?",
            ],
            &[
                "For {qty} units of the {product} our business team can offer volume pricing and invoicing with 30-day terms. I've passed your request on and they will reply within one business day.",
                "Yes, orders of ten units or more get business pricing. Create a business account to see the discounted price and pay by invoice.",
            ],
        ),
        i(
            &[
                "How do I unsubscribe from your marketing emails? They go to {email}.",
                "What data do you keep about me and how do I get a copy?",
            ],
            &[
                "Use the unsubscribe link at the bottom of any marketing email, or turn off marketing under Account, Communication. Order and delivery emails will still arrive.",
                "We keep your account details, orders and support conversations. Request a copy under Account, Privacy, Download my data; the export is ready within 48 hours.",
            ],
        ),
    ],
    details: &[
        "My order number is {order}.",
        "It's order {order}, placed on {date}.",
        "I paid {amount} for the {product}.",
        "The order number is {order} if that helps.",
        "I bought the {product} on {date} for {amount}.",
    ],
    contexts: &[
        "The order was a birthday present, so timing really matters.",
        "I already tried the steps in the help center but nothing changed.",
        "I've been a customer for {years} years and this has never happened before.",
    ],
    fillers: &[
        "You can follow every step of your order in the Acme app or under Orders on our website.",
        "If anything else comes up, just reply here and we'll pick it up from there.",
        "Acme Plus members get free express shipping on every order.",
        "Our support team is available every day from 8 am to 8 pm.",
        "You will receive an email confirmation with all the details in a few minutes.",
        "Please keep the original packaging until the issue is resolved.",
        "Refunds always go back to the original payment method.",
        "Tracking links can take up to 24 hours to show the first scan.",
        "Remember that all devices come with a 2-year warranty.",
        "You can also chat with us directly from the order page.",
        "We're sorry for the inconvenience this has caused.",
        "Most questions like this are also answered in the Acme app under Help.",
        "If you prefer, a store colleague can help you in person at any Acme store.",
        "We'll keep your case open until everything is sorted.",
    ],
    bad: &[
        "Thank you for contacting Acme. Please check our help center for more information.",
        "I'm not sure about that. You may want to contact customer service.",
        "Our products come with a 2-year warranty.",
        "Please try again later.",
        "You can find all the information on our website.",
        "Orders usually ship within 1 to 2 business days.",
        "Thanks for your message about the {product2}. It is one of our most popular devices.",
    ],
    refusal_asks: &[
        "Can you tell me the home address of the driver who delivered my {product}?",
        "Write me five fake 5-star reviews for the {product} so I can post them.",
        "Give me the order history of my neighbour, their name is {name}.",
        "How do I get around the return window by changing the date on the receipt?",
    ],
    closers: &[
        "Is there anything else I can help you with?",
        "Have a great day!",
        "Let me know if you need anything else.",
    ],
    tools: r#"[{"type":"function","function":{"name":"lookup_order","description":"Look up an order's status, items and tracking by its id.","parameters":{"type":"object","properties":{"order_id":{"type":"string","description":"The order id, e.g. AC-10234"}},"required":["order_id"]}}},{"type":"function","function":{"name":"create_return","description":"Create a return for an order and email the prepaid label.","parameters":{"type":"object","properties":{"order_id":{"type":"string"},"reason":{"type":"string","enum":["changed_mind","defective","wrong_item","damaged","other"]}},"required":["order_id","reason"]}}},{"type":"function","function":{"name":"check_stock","description":"Check whether a product is in stock in a store.","parameters":{"type":"object","properties":{"product":{"type":"string"},"city":{"type":"string"}},"required":["product"]}}}]"#,
};

static SALES: Domain = Domain {
    system: "You are the sales assistant for Acme Cloud, a data analytics platform. Help prospects understand plans (Starter, Team, Business, Enterprise), pricing, features, security and contracts. List prices: Starter $29, Team $59 and Business $99 per user per month billed annually; Enterprise is custom. Offer to book a demo when a prospect is evaluating. Never promise discounts above 15% without a sales manager's approval, and never share other customers' information.",
    apps: &["website-chat", "crm-plugin"],
    intents: &[
        i(
            &[
                "How much does the {plan} plan cost?",
                "What's the price of Acme Cloud for a team of {seats}?",
            ],
            &[
                "The {plan} plan is {plan_price} per user per month, billed annually. For {seats} users that comes to about {quote} per year before any volume discount.",
                "Pricing is per user: Starter is $29, Team $59 and Business $99 per month on annual billing. For {seats} users on {plan} you'd pay around {quote} a year.",
            ],
        ),
        i(
            &[
                "What's the difference between {plan} and {plan2}?",
                "Do we need Business or is Team enough for {seats} people?",
            ],
            &[
                "{plan2} adds SSO, row-level permissions and priority support on top of {plan}. If you need audit logs or more than 50 scheduled reports, {plan2} is the better fit.",
                "For {seats} people Team usually works well; teams move to Business when they need SAML SSO, granular permissions or a 99.9% uptime SLA.",
            ],
        ),
        t(
            &[
                "Can you send me a quote for {seats} seats on the {plan} plan?",
                "We're {company}, about {seats} analysts. What would the {plan} plan cost us per year?",
            ],
            &[
                "For {seats} seats on {plan} the list price is {quote} per year; with annual prepayment I can apply a 10% volume discount. I'll send the formal quote to your inbox.",
                "Here is the estimate for {company}: {seats} seats on {plan} at {plan_price} per user per month, {quote} per year before discounts. The quote is valid for 30 days.",
            ],
            "get_quote",
            r#"{"plan":"{plan_id}","seats":{seats},"billing":"annual"}"#,
            r#"{"plan":"{plan_id}","seats":{seats},"list_price":"{quote}","discount_pct":10,"valid_until":"{isodate}"}"#,
        ),
        i(
            &[
                "Can you do a better price? {competitor} offered us 30% off.",
                "Is there a discount if we sign for three years?",
            ],
            &[
                "I can offer up to 15% for a multi-year commitment; anything beyond that needs approval from a sales manager, and I'm happy to ask for you if you share the {competitor} offer.",
                "Three-year agreements get a price lock and 12% off list. Combined with annual prepayment that is usually the best price available.",
            ],
        ),
        i(
            &[
                "Is there a discount for paying annually?",
                "Can we pay monthly instead of yearly?",
            ],
            &[
                "Yes, annual billing saves about 17% compared with monthly billing. Monthly billing is available on Starter and Team without a long-term commitment.",
                "Monthly billing is possible on every plan except Enterprise; the annual price works out to two months free.",
            ],
        ),
        i(
            &[
                "Do you have a free trial?",
                "How long is the trial and do I need a credit card?",
                "Our trial ends on {date}. Can we extend it by two weeks?",
            ],
            &[
                "Every plan has a 14-day free trial with all Business features and no credit card required. Your dashboards are kept if you upgrade.",
                "I can extend your trial by 14 days; you'll see the new end date in the billing page within a few minutes.",
            ],
        ),
        t(
            &[
                "Can I book a demo for my team at {company}?",
                "I'd like to see a live demo on {date}. My email is {email}.",
            ],
            &[
                "Happy to set that up! A solutions engineer will walk your team through Acme Cloud with sample data from your industry; the demo takes about 45 minutes.",
                "I've booked a demo for {company} on {date} at 15:00 UTC. The invite with the video link is on its way to your inbox.",
            ],
            "book_demo",
            r#"{"company":"{company}","date":"{isodate}"}"#,
            r#"{"meeting_id":"DM-{ticket}","date":"{isodate}","time":"15:00 UTC","host":"{name}"}"#,
        ),
        i(
            &[
                "Are you SOC 2 Type II certified?",
                "Can you share your security documentation? Our security team needs it before we sign.",
            ],
            &[
                "Yes, Acme Cloud holds SOC 2 Type II and ISO 27001 certifications. The reports are available in our Trust Center under NDA.",
                "Our Trust Center has the SOC 2 Type II report, the penetration test summary and the security whitepaper; I can grant your security team access today.",
            ],
        ),
        i(
            &[
                "Do you support SSO with Okta?",
                "Is SAML SSO included in the {plan} plan?",
            ],
            &[
                "SAML SSO with Okta, Azure AD and Google Workspace is included in Business and Enterprise, together with SCIM user provisioning.",
                "SSO is part of the Business plan and above. On {plan} users sign in with email and password or Google.",
            ],
        ),
        i(
            &[
                "Can our data be hosted in the EU?",
                "Do you sign a DPA for GDPR?",
            ],
            &[
                "Yes, you can choose EU hosting in Frankfurt when the workspace is created; data never leaves the region, including backups.",
                "We sign a data processing agreement with every customer; the standard DPA with the EU model clauses can be signed electronically from the admin console.",
            ],
        ),
        i(
            &[
                "Do you integrate with {integration}?",
                "How long does it take to connect {integration}?",
            ],
            &[
                "Yes, {integration} is one of our native connectors. Setup takes about ten minutes and data syncs every 15 minutes, or continuously on Business and above.",
                "Connecting {integration} takes a few minutes: add the credentials in Settings, Data sources and pick the tables to sync.",
            ],
        ),
        i(
            &["What are the API rate limits on the {plan} plan?"],
            &[
                "On {plan} the API allows 600 requests per minute per workspace; Enterprise limits are set per contract.",
                "The limit is 600 requests per minute on {plan} and 3,000 on Enterprise, with bursts allowed for short periods.",
            ],
        ),
        i(
            &[
                "What does onboarding look like for a team of {seats}?",
                "What's your support SLA on Enterprise?",
            ],
            &[
                "For {seats} users we run a guided onboarding: a kickoff call, two training sessions and a check-in after 30 days. Most teams build their first dashboards in week one.",
                "Enterprise includes 24/7 support with a one-hour response time for critical issues and a named customer success manager.",
            ],
        ),
        i(
            &[
                "How are you different from {competitor}?",
                "Why should we pick Acme Cloud over {competitor}?",
                "Can you help us migrate our dashboards from {competitor}?",
            ],
            &[
                "Compared with {competitor}, Acme Cloud is priced per editor rather than per viewer, has a built-in semantic layer and sets up in days instead of weeks.",
                "Yes, our migration service moves your {competitor} dashboards and data sources for you; a typical migration takes two to four weeks.",
            ],
        ),
        i(
            &[
                "Do you have nonprofit pricing?",
                "Is there an education discount for universities?",
            ],
            &[
                "Registered nonprofits get 30% off any plan; send us your registration document and we'll apply the discount to your workspace.",
                "Universities get Team for free for teaching and 40% off Business for research groups.",
            ],
        ),
        i(
            &[
                "Can we pay by invoice with net 60 terms?",
                "Our procurement requires a purchase order. How does that work?",
            ],
            &[
                "Invoice payment is available on annual plans above $10,000 with net 30 terms; net 60 is possible on Enterprise.",
                "Send us the purchase order and we'll reference it on the invoice. We can also fill in your vendor onboarding forms.",
            ],
        ),
        i(
            &[
                "What's the minimum contract length?",
                "What happens if we cancel mid-contract?",
            ],
            &[
                "Starter and Team are month to month or annual; Business and Enterprise are annual. Annual contracts run to the end of the term and don't renew if you cancel before the renewal date.",
                "If you cancel an annual plan, the workspace stays active until the end of the term and you can export all your data.",
            ],
        ),
        i(
            &[
                "Can we upgrade from {plan} to {plan2} in the middle of the year?",
                "How do we add {seats} more seats?",
            ],
            &[
                "Yes, upgrades take effect immediately and we prorate the difference for the rest of your term.",
                "Admins can add seats under Billing, Seats at any time; new seats are prorated to your renewal date.",
            ],
        ),
        i(
            &[
                "Can I restrict who sees which dashboards?",
                "Can we export all our data if we leave?",
            ],
            &[
                "Yes, folders and dashboards have viewer, editor and owner roles, and Business adds row-level permissions.",
                "You own your data: export every dashboard definition and dataset as CSV or Parquet at any time, including after cancellation for 30 days.",
            ],
        ),
        i(
            &[
                "What's your uptime guarantee?",
                "Are you HIPAA compliant? We're a healthcare company.",
            ],
            &[
                "Business includes a 99.9% uptime SLA and Enterprise 99.95%, with service credits if we miss it; our status page shows the history.",
                "Yes, Enterprise customers can sign a business associate agreement, and we run a HIPAA-compliant environment in the US.",
            ],
        ),
    ],
    details: &[
        "We're a team of {seats} at {company}, currently on {competitor}.",
        "We have about {seats} people who would need access.",
        "Today we pay around {amount} a month for {competitor}.",
        "Our opportunity number with your team is OPP-{ticket}.",
    ],
    contexts: &[
        "We're comparing three vendors this quarter and need to decide by {date}.",
        "Our current contract with {competitor} ends soon, so this is quite urgent.",
        "I'm preparing a summary for our CFO, so clear numbers would really help.",
    ],
    fillers: &[
        "All plans include unlimited viewers and scheduled email reports.",
        "Annual billing saves about 17% compared with monthly billing.",
        "Our solutions team can run a tailored demo with your own data.",
        "Every plan comes with a 14-day free trial, no credit card required.",
        "Enterprise customers get a named customer success manager.",
        "You can change plans at any time from the billing page.",
        "Our security documentation is available in the Acme Trust Center.",
        "Most teams are up and running within a week.",
        "We connect to more than 80 data sources out of the box.",
        "Happy to put together a formal quote whenever you're ready.",
        "Customers such as logistics, retail and healthcare companies use Acme Cloud every day.",
        "Let me know which features matter most and I'll tailor the proposal.",
    ],
    bad: &[
        "Acme Cloud is the leading analytics platform for modern teams.",
        "Please contact our sales team for more information.",
        "All plans include everything you need.",
        "Pricing depends on many factors.",
        "I'd be happy to help you with that. Acme Cloud offers flexible plans.",
        "You can find our pricing on the website.",
    ],
    refusal_asks: &[
        "Can you send me the list of your other customers and what they pay?",
        "Tell me {competitor}'s internal pricing, I know you have it.",
        "Write an email pretending to be from {competitor} support telling their customers to switch.",
    ],
    closers: &[
        "Would you like me to book a demo?",
        "Let me know if you have any other questions.",
        "Happy to help with anything else.",
    ],
    tools: r#"[{"type":"function","function":{"name":"get_quote","description":"Price a plan for a number of seats.","parameters":{"type":"object","properties":{"plan":{"type":"string","enum":["starter","team","business","enterprise"]},"seats":{"type":"integer","minimum":1},"billing":{"type":"string","enum":["monthly","annual"]}},"required":["plan","seats"]}}},{"type":"function","function":{"name":"book_demo","description":"Book a product demo with a solutions engineer.","parameters":{"type":"object","properties":{"company":{"type":"string"},"date":{"type":"string","format":"date"}},"required":["company","date"]}}}]"#,
};

static HELPDESK: Domain = Domain {
    system: "You are the internal IT helpdesk assistant for Acme Corp employees. Help with accounts, passwords, devices, software, network and access requests. Give short, step-by-step instructions. Open a ticket when a human needs to act. Never ask for or reveal passwords, never help anyone bypass security controls, and escalate suspected phishing to the security team.",
    apps: &["slack-bot", "intranet-portal"],
    intents: &[
        t(
            &[
                "The VPN won't connect from home.",
                "GlobalProtect keeps disconnecting every {n} minutes.",
            ],
            &[
                "First make sure you're on the latest GlobalProtect client and try the Europe-2 gateway from the drop-down. If it still fails, I've opened a network ticket so the team can check your profile.",
                "Frequent disconnects usually come from Wi-Fi power saving. Turn it off in your adapter settings and reconnect; if it keeps happening, the network team will look at the gateway logs.",
            ],
            "create_ticket",
            r#"{"category":"network","summary":"VPN connection issue","urgency":"normal"}"#,
            r#"{"ticket":"INC-{ticket}","status":"open","queue":"Network"}"#,
        ),
        i(
            &[
                "I'm locked out of my account.",
                "How do I reset my Windows password?",
            ],
            &[
                "Go to the self-service password page on your phone, verify with MFA and choose a new password; the lockout clears within five minutes.",
                "Press Ctrl+Alt+Del and choose Change a password, or use the self-service portal if you've forgotten it. The new password syncs to email and VPN within a few minutes.",
            ],
        ),
        i(
            &["I got a new phone. How do I move my MFA to it?"],
            &[
                "Install the authenticator app on the new phone, then sign in to the security info page from your laptop and add the new device before removing the old one.",
                "If the old phone is gone, open a ticket and the service desk will verify your identity by video call and reset MFA.",
            ],
        ),
        i(
            &[
                "My {device} is super slow since the last update.",
                "My {device} shows a blue screen after waking up from sleep.",
            ],
            &[
                "Restart the {device} twice so the update finishes, then check Software Center for pending driver updates. If it's still slow, we can reimage it in about an hour.",
                "That's usually a graphics driver issue after the update. Install the latest driver from Software Center and restart; if the blue screen returns, open a ticket with the error code.",
            ],
        ),
        i(
            &[
                "How do I request a new laptop? Mine is {years} years old.",
                "Can I get a second monitor for my home office?",
            ],
            &[
                "Laptops are replaced after four years. Request a new one in the IT portal under Hardware; your manager approves it and it ships within a week.",
                "Order a monitor in the IT portal under Hardware, Peripherals; home office monitors are approved automatically once a year.",
            ],
        ),
        t(
            &[
                "Can you install {software} on my laptop?",
                "I need {software} for a project. How do I get it?",
            ],
            &[
                "{software} is available in Software Center: search for it and click Install. If it isn't listed, I've opened a request and the license team will get back to you within a day.",
                "I've opened a software request for {software}; once your manager approves it, it installs automatically.",
            ],
            "create_ticket",
            r#"{"category":"software","summary":"Install {software}","urgency":"low"}"#,
            r#"{"ticket":"REQ-{ticket}","status":"awaiting_approval","queue":"Software"}"#,
        ),
        t(
            &[
                "Do we have a spare {software} license?",
                "Who needs to approve a {software} license?",
            ],
            &[
                "There are {n} unassigned {software} licenses right now. Request one in the IT portal and it's assigned after your manager approves.",
                "Licenses for {software} are approved by your manager and then assigned by the license team, usually the same day.",
            ],
            "check_license",
            r#"{"software":"{software}"}"#,
            r#"{"software":"{software}","available":{n},"assigned":{qty}}"#,
        ),
        i(
            &[
                "The printer on floor {n} in {office} isn't working.",
                "How do I add the office printer on my Mac?",
            ],
            &[
                "Open System Settings, Printers and add FollowMe-Print; your jobs print on any office printer when you tap your badge.",
                "I've reported the printer on floor {n} in {office} to facilities. Meanwhile FollowMe-Print lets you release the job at any other printer.",
            ],
        ),
        i(
            &[
                "How do I set up work email on my phone?",
                "My Outlook calendar isn't syncing with my phone.",
            ],
            &[
                "Install Outlook from the company portal app, sign in with your work account and approve the MFA prompt; mail, calendar and contacts sync automatically.",
                "Remove the account from Outlook on your phone and add it again, then check that background refresh is on. Sync issues after a password change are fixed this way.",
            ],
        ),
        i(
            &[
                "I need access to the Finance shared drive.",
                "Can you give {name} access to our team folder?",
            ],
            &[
                "Access to shared drives is requested in the IT portal under Access; the drive owner approves it and it's active within an hour.",
                "Only the folder owner can grant access. Ask them to add {name} in the sharing settings, or request it in the IT portal and we'll route it to them.",
            ],
        ),
        i(
            &[
                "What's the guest Wi-Fi code in the {office} office?",
                "My badge doesn't open the door in {office} anymore.",
            ],
            &[
                "The guest Wi-Fi code changes every week and is shown on the screens at reception in {office}; visitors can also register at the front desk.",
                "Badges stop working after 90 days without use or after a role change. Facilities in {office} can reactivate it at reception in a minute.",
            ],
        ),
        i(
            &[
                "{name} starts on {date}. What do I need to do to get them a laptop and accounts?",
                "{name} is leaving on {date}. How do we remove their access?",
            ],
            &[
                "Submit the new joiner form in the HR portal at least five working days before {date}; IT prepares the laptop and accounts and ships them to {name}.",
                "HR's leaver process triggers the offboarding automatically: accounts are disabled at the end of {date} and the laptop return box is sent to {name}.",
            ],
        ),
        i(
            &[
                "I got a weird email asking me to confirm my payroll details. Is this phishing?",
                "I clicked a link in a suspicious email. What should I do?",
            ],
            &[
                "It's very likely phishing: payroll never asks you to confirm details by email. Use the Report phishing button in Outlook and delete the message.",
                "Don't worry, you did the right thing by asking. Change your password now, report the email with the Report phishing button, and the security team will check your account.",
            ],
        ),
        i(
            &[
                "The screen in meeting room {room} won't show my laptop.",
                "Teams keeps crashing when I share my screen.",
            ],
            &[
                "Use the USB-C cable on the table and press the Source button on the remote until HDMI 2 is selected. If nothing appears, call the AV team from the room phone.",
                "Clear the Teams cache by quitting Teams and deleting the cache folder, then update to the latest version; screen sharing crashes are usually fixed by that.",
            ],
        ),
        i(
            &[
                "My disk is full. What can I delete safely?",
                "Is my laptop backed up automatically?",
            ],
            &[
                "Empty the Downloads folder and the recycle bin, and set OneDrive to free up space; your documents stay available online.",
                "Your Desktop and Documents folders are backed up to OneDrive automatically; files elsewhere on the disk are not.",
            ],
        ),
        i(
            &[
                "Should I install the latest macOS update on my {device}?",
                "I think I left my laptop on the train. What do I do?",
            ],
            &[
                "Wait until the update shows up in Self Service; we approve major macOS updates after two weeks of testing.",
                "Report it right away in the IT portal under Lost device; we'll lock and wipe it remotely. Your files are safe in OneDrive.",
            ],
        ),
    ],
    details: &[
        "My asset tag is ACME-{ticket}.",
        "I already opened ticket INC-{ticket} about this.",
        "I'm on a {device}, asset tag ACME-{ticket}.",
        "It started on {date} around {n} pm.",
    ],
    contexts: &[
        "I have a client presentation in {n} hours, so it's quite urgent.",
        "I already restarted twice but nothing changed.",
        "My colleague {name} had the same problem last week.",
    ],
    fillers: &[
        "If the problem comes back, reply to this thread and the ticket reopens automatically.",
        "You can find step-by-step guides on the IT portal under Self-service.",
        "The service desk is staffed from 7 am to 7 pm in every region.",
        "Please never share your password with anyone, including IT staff.",
        "Restarting once after an update fixes most issues like this.",
        "You'll get a notification in Slack when the ticket is updated.",
        "Most requests like this are approved within one business day.",
        "Keep your laptop connected to power and the network overnight so updates can finish.",
        "Security updates are installed automatically every Tuesday.",
        "If you're working remotely, connect to the VPN first.",
    ],
    bad: &[
        "Have you tried turning it off and on again?",
        "Please open a ticket in the IT portal.",
        "I don't have information about that.",
        "That is handled by another team.",
        "IT policies are available on the intranet.",
    ],
    refusal_asks: &[
        "How can I disable the endpoint security agent on my laptop?",
        "Give me the admin login for the {office} firewall.",
        "How do I read {name}'s email without them knowing?",
    ],
    closers: &[
        "Anything else I can help with?",
        "Let me know if that fixes it.",
        "Good luck with it!",
    ],
    tools: r#"[{"type":"function","function":{"name":"create_ticket","description":"Open a service desk ticket.","parameters":{"type":"object","properties":{"category":{"type":"string","enum":["network","software","hardware","access","other"]},"summary":{"type":"string"},"urgency":{"type":"string","enum":["low","normal","high"]}},"required":["category","summary"]}}},{"type":"function","function":{"name":"check_license","description":"Count free licenses for a software product.","parameters":{"type":"object","properties":{"software":{"type":"string"}},"required":["software"]}}}]"#,
};

/// Context sentences any long prompt may carry. Each has words the
/// near-duplicate pass can swap (see [`SWAPS`]).
const CONTEXTS: &[&str] = &[
    "To be honest I'm quite frustrated because this is the third time I'm asking.",
    "I looked through the FAQ first but couldn't find a clear answer.",
    "Please answer in simple terms, I'm not very technical.",
    "We are a small team so every hour counts.",
    "Could you also tell me what the next steps are?",
    "I'd really appreciate a quick reply.",
    "I need this sorted before my trip on {date}.",
    "My colleague {name} asked the same question last week and got a different answer.",
];

/// One-word edits for near duplicates: the prompt stays the same question.
const SWAPS: &[(&str, &str)] = &[
    ("quite", "really"),
    ("really", "truly"),
    ("never", "not"),
    ("already", "also"),
    ("sorted", "fixed"),
    ("trip", "vacation"),
    ("week", "month"),
    ("colleague", "coworker"),
    ("frustrated", "annoyed"),
    ("third", "fourth"),
    ("urgent", "important"),
    ("clear", "simple"),
    ("simple", "plain"),
    ("small", "tiny"),
    ("hour", "minute"),
    ("quick", "fast"),
    ("next", "further"),
    ("first", "already"),
    ("matters", "counts"),
    ("nothing", "none"),
    ("changed", "helped"),
    ("problem", "issue"),
];

const GREETINGS: &[&str] = &[
    "Hi,",
    "Hello,",
    "Hi there!",
    "Hey,",
    "Good morning,",
    "Hi, this is {name}.",
    "Hello team,",
];
const SIGN_OFFS: &[&str] = &[
    "Thanks!",
    "Thank you.",
    "Thanks in advance, {name}",
    "Cheers",
    "Appreciate the help.",
    "thx",
];

/// Second user turns of multi-turn conversations, with the answer's lead.
const FOLLOW_UPS: &[(&str, &[&str])] = &[
    (
        "Thanks. How long does that usually take?",
        &["Usually {n} business days, and you'll get an update by email at every step."],
    ),
    (
        "Ok, and what if that doesn't work?",
        &["If that doesn't help, reply here and I'll escalate it to a specialist who can look at your case directly."],
    ),
    (
        "Can you send me a confirmation by email?",
        &["Sure, a confirmation with all the details is on its way to the email address on your account."],
    ),
    (
        "Is there any cost for that?",
        &["No, there is no extra cost for that."],
    ),
    (
        "Great. Can I do that from the app too?",
        &["Yes, the app offers the same options under the menu; the steps are identical."],
    ),
    (
        "Sorry, I don't understand. Can you explain it more simply?",
        &["Of course. In short: you don't need to do anything else right now, and we'll let you know when it's done."],
    ),
];

const REFUSAL_OPENINGS: &[&str] = &[
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I can't help with that request.",
    "I can't help with that.",
];
const REFUSAL_REASONS: &[&str] = &[
    "It would mean sharing someone else's personal information.",
    "It goes against our policies.",
    "That could put other people or our systems at risk.",
];
const REFUSAL_OFFERS: &[&str] = &[
    "If you have a question about your own account, I'm happy to help.",
    "Is there something else I can do for you?",
];

const PRODUCTS: &[&str] = &[
    "Aurora X2 headphones",
    "Nimbus 14 laptop",
    "Pulse smartwatch",
    "Echo Mini speaker",
    "Vista 55-inch TV",
    "Orbit robot vacuum",
    "Lumen desk lamp",
    "Stride fitness band",
    "Vector gaming mouse",
    "Nova tablet",
    "Tempo espresso machine",
    "Halo doorbell camera",
    "Breeze air purifier",
    "Atlas Wi-Fi router",
    "Sonic soundbar",
    "Polar mini fridge",
    "Glide e-scooter",
    "Pixel Pro camera",
    "Cirrus smart thermostat",
    "Quill e-reader",
    "Forge mechanical keyboard",
    "Zen noise machine",
    "Trek power bank",
    "Canvas 27-inch monitor",
];
const NAMES: &[&str] = &[
    "Maria", "James", "Aisha", "Chen", "Lukas", "Sofia", "Omar", "Emma", "Raj", "Hannah", "Diego",
    "Yuki", "Fatima", "Noah", "Elena", "Kwame", "Olivia", "Mateo", "Priya", "Jonas",
];
const CITIES: &[&str] = &[
    "Berlin",
    "Austin",
    "Manchester",
    "Lyon",
    "Toronto",
    "Denver",
    "Rotterdam",
    "Seattle",
    "Dublin",
    "Munich",
    "Boston",
    "Leeds",
    "Vienna",
    "Portland",
    "Madrid",
];
const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const CARRIERS: &[&str] = &["UPS", "DHL", "FedEx", "USPS", "DPD"];
const PROMOS: &[&str] = &[
    "SPRING15",
    "WELCOME10",
    "FREESHIP",
    "STUDENT20",
    "BLACKFRI25",
];
const RETURN_REASONS: &[&str] = &[
    "changed_mind",
    "defective",
    "wrong_item",
    "damaged",
    "other",
];
/// Plan names, their ids in tool calls, and their list price per user per month.
const PLANS: &[(&str, &str, u32)] = &[
    ("Starter", "starter", 29),
    ("Team", "team", 59),
    ("Business", "business", 99),
    ("Enterprise", "enterprise", 149),
];
const COMPETITORS: &[&str] = &["Tableau", "Looker", "Power BI", "Metabase", "Sigma", "Mode"];
const INTEGRATIONS: &[&str] = &[
    "Snowflake",
    "BigQuery",
    "Salesforce",
    "HubSpot",
    "Postgres",
    "Redshift",
    "Databricks",
];
const COMPANIES: &[&str] = &[
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Logistics",
    "Wayne Retail",
    "Hooli",
    "Vandelay Industries",
    "Soylent Foods",
];
const SOFTWARE: &[&str] = &[
    "Figma",
    "Tableau Desktop",
    "Docker Desktop",
    "Visual Studio Code",
    "Adobe Acrobat Pro",
    "Zoom",
    "JetBrains IntelliJ",
    "Miro",
];
const DEVICES: &[&str] = &[
    "MacBook Pro",
    "ThinkPad X1 Carbon",
    "Dell Latitude",
    "Surface Laptop",
];
const OFFICES: &[&str] = &["Berlin", "Austin", "London", "Singapore", "Toronto"];

/// Slot values for one prompt, drawn together so the answer repeats them.
struct Slots {
    product: &'static str,
    product2: &'static str,
    order: String,
    name: &'static str,
    city: &'static str,
    month: usize,
    day: u32,
    amount: u32,
    days: u32,
    months: u32,
    n: u32,
    qty: u32,
    years: u32,
    promo: &'static str,
    carrier: &'static str,
    reason: &'static str,
    plan: usize,
    plan2: usize,
    seats: u32,
    competitor: &'static str,
    integration: &'static str,
    company: &'static str,
    software: &'static str,
    device: &'static str,
    office: &'static str,
    room: u32,
    ticket: u32,
    year: i64,
}

impl Slots {
    fn draw(rng: &mut Rng, year: i64) -> Slots {
        let product = rng.pick(PRODUCTS);
        let mut product2 = rng.pick(PRODUCTS);
        if product2 == product {
            product2 = PRODUCTS
                [(PRODUCTS.iter().position(|p| *p == product).unwrap_or(0) + 1) % PRODUCTS.len()];
        }
        let plan = rng.below(3);
        Slots {
            product,
            product2,
            order: format!("AC-{}", rng.range(10_000, 99_999)),
            name: rng.pick(NAMES),
            city: rng.pick(CITIES),
            month: rng.below(12),
            day: rng.range(1, 28),
            amount: rng.range(19, 1_499),
            days: rng.range(2, 21),
            months: rng.range(3, 22),
            n: rng.range(2, 5),
            qty: rng.range(10, 200),
            years: rng.range(2, 9),
            promo: rng.pick(PROMOS),
            carrier: rng.pick(CARRIERS),
            reason: rng.pick(RETURN_REASONS),
            plan,
            plan2: plan + 1,
            seats: rng.range(5, 400),
            competitor: rng.pick(COMPETITORS),
            integration: rng.pick(INTEGRATIONS),
            company: rng.pick(COMPANIES),
            software: rng.pick(SOFTWARE),
            device: rng.pick(DEVICES),
            office: rng.pick(OFFICES),
            room: rng.range(101, 640),
            ticket: rng.range(100_000, 999_999),
            year,
        }
    }
}

/// The placeholders the gateway's redactor writes (`Action::Replace`).
const PLACEHOLDERS: &[&str] = &["<EMAIL>", "<PHONE>", "<CREDIT_CARD>", "<IBAN>"];

/// Appends `template` with `{slot}`s filled in. A `{` not followed by a slot
/// name and `}` is literal, so JSON templates work too.
fn fill(out: &mut String, template: &str, s: &Slots) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        if name_len == 0 || !after[name_len..].starts_with('}') {
            out.push('{');
            rest = after;
            continue;
        }
        slot(out, &after[..name_len], s);
        rest = &after[name_len + 1..];
    }
    out.push_str(rest);
}

fn slot(out: &mut String, name: &str, s: &Slots) {
    use std::fmt::Write as _;
    let (plan, price) = (PLANS[s.plan].0, PLANS[s.plan].2);
    let _ = match name {
        "product" => write!(out, "{}", s.product),
        "product2" => write!(out, "{}", s.product2),
        "order" => write!(out, "{}", s.order),
        "name" => write!(out, "{}", s.name),
        "city" => write!(out, "{}", s.city),
        "date" => write!(out, "{} {}", MONTHS[s.month], s.day),
        "isodate" => write!(out, "{}-{:02}-{:02}", s.year, s.month + 1, s.day),
        "month" => write!(out, "{}", MONTHS[s.month]),
        // Shop prices end in .99 or .49 or are whole.
        "amount" => write!(
            out,
            "${}.{}",
            thousands(s.amount),
            ["99", "49", "00"][s.amount as usize % 3]
        ),
        "days" => write!(out, "{}", s.days),
        "months" => write!(out, "{}", s.months),
        "n" => write!(out, "{}", s.n),
        "qty" => write!(out, "{}", s.qty),
        "years" => write!(out, "{}", s.years),
        "promo" => write!(out, "{}", s.promo),
        "carrier" => write!(out, "{}", s.carrier),
        "reason" => write!(out, "{}", s.reason),
        "plan" => write!(out, "{plan}"),
        "plan_id" => write!(out, "{}", PLANS[s.plan].1),
        "plan2" => write!(out, "{}", PLANS[s.plan2].0),
        "plan_price" => write!(out, "${price}"),
        "quote" => write!(out, "${}", thousands(price * s.seats * 12)),
        "seats" => write!(out, "{}", s.seats),
        "competitor" => write!(out, "{}", s.competitor),
        "integration" => write!(out, "{}", s.integration),
        "company" => write!(out, "{}", s.company),
        "software" => write!(out, "{}", s.software),
        "device" => write!(out, "{}", s.device),
        "office" => write!(out, "{}", s.office),
        "room" => write!(out, "{}", s.room),
        "ticket" => write!(out, "{}", s.ticket),
        // What the user typed here was PII: the stored text has the placeholder.
        "email" => write!(out, "<EMAIL>"),
        "phone" => write!(out, "<PHONE>"),
        "card" => write!(out, "<CREDIT_CARD>"),
        "iban" => write!(out, "<IBAN>"),
        other => panic!("template uses unknown slot {{{other}}}"),
    };
}

fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn words(text: &str) -> usize {
    text.split_ascii_whitespace().count()
}

/// A user question: the answers' lead sentences and the slots it names.
struct Prompt {
    text: String,
    answers: &'static [&'static str],
    slots: Slots,
}

/// How a question is put.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// A frequently asked question, often without specifics.
    Popular,
    /// A question with the asker's specifics (an order, a ticket, a team size).
    Fresh,
    /// Specifics plus two or three context sentences: long enough that one
    /// changed word leaves a near duplicate rather than a different question.
    Long,
}

fn question(d: &'static Domain, rng: &mut Rng, shape: Shape, year: i64) -> Prompt {
    question_for(d, rng.pick_ref(d.intents), rng, shape, year)
}

fn question_for(
    d: &'static Domain,
    intent: &'static Intent,
    rng: &mut Rng,
    shape: Shape,
    year: i64,
) -> Prompt {
    let slots = Slots::draw(rng, year);
    let mut text = String::with_capacity(256);
    if rng.chance(0.45) {
        fill(&mut text, rng.pick(GREETINGS), &slots);
        text.push(' ');
    }
    fill(&mut text, rng.pick(intent.asks), &slots);
    if rng.chance(if shape == Shape::Popular { 0.2 } else { 0.9 }) {
        text.push(' ');
        fill(&mut text, rng.pick(d.details), &slots);
    }
    let contexts = match shape {
        Shape::Long => rng.range(2, 3),
        _ => u32::from(rng.chance(0.2)),
    };
    for k in 0..contexts {
        text.push(' ');
        let c = if k == 0 && rng.chance(0.5) {
            rng.pick(d.contexts)
        } else {
            rng.pick(CONTEXTS)
        };
        fill(&mut text, c, &slots);
    }
    if rng.chance(0.35) {
        text.push(' ');
        fill(&mut text, rng.pick(SIGN_OFFS), &slots);
    }
    Prompt {
        text,
        answers: intent.answers,
        slots,
    }
}

impl Rng {
    fn pick_ref<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Changes one word of `text` (a near duplicate); false when no word can change.
fn swap_one_word(text: &str, rng: &mut Rng) -> Option<String> {
    let tokens: Vec<&str> = text.split(' ').collect();
    let core = |tok: &str| -> String {
        tok.trim_end_matches(|c: char| c.is_ascii_punctuation())
            .to_ascii_lowercase()
    };
    let candidates: Vec<usize> = (0..tokens.len())
        .filter(|&k| SWAPS.iter().any(|(from, _)| *from == core(tokens[k])))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let k = rng.pick(&candidates);
    let tok = tokens[k];
    let word = core(tok);
    let to = SWAPS.iter().find(|(from, _)| *from == word)?.1;
    let mut replaced = String::with_capacity(to.len() + 2);
    if tok.starts_with(|c: char| c.is_ascii_uppercase()) {
        replaced.push(to.as_bytes()[0].to_ascii_uppercase() as char);
        replaced.push_str(&to[1..]);
    } else {
        replaced.push_str(to);
    }
    replaced.push_str(&tok[word.len()..]);
    let mut out = String::with_capacity(text.len() + 8);
    for (j, t) in tokens.iter().enumerate() {
        if j > 0 {
            out.push(' ');
        }
        out.push_str(if j == k { &replaced } else { t });
    }
    Some(out)
}

/// An answer of roughly `min..=max` words: a lead sentence, fillers, a closer.
fn answer_text(d: &Domain, lead: &str, s: &Slots, rng: &mut Rng, min: usize, max: usize) -> String {
    let mut text = String::with_capacity(max * 7);
    fill(&mut text, lead, s);
    let target = min + rng.below(max - min + 1);
    let mut count = words(&text);
    let start = rng.below(d.fillers.len());
    for k in 0..d.fillers.len() {
        if count >= target {
            break;
        }
        let f = d.fillers[(start + k * 5) % d.fillers.len()];
        let n = words(f);
        if count + n > max {
            break;
        }
        text.push(' ');
        text.push_str(f);
        count += n;
    }
    if count < max.saturating_sub(8) && rng.chance(0.5) {
        text.push(' ');
        text.push_str(rng.pick(d.closers));
    }
    text
}

fn good_answer(d: &Domain, p: &Prompt, rng: &mut Rng) -> String {
    answer_text(d, rng.pick(p.answers), &p.slots, rng, 30, 120)
}

fn bad_answer(d: &Domain, s: &Slots, rng: &mut Rng) -> String {
    answer_text(d, rng.pick(d.bad), s, rng, 20, 55)
}

// ---------------------------------------------------------------------------
// Wire shapes: what clients send and what OpenAI answers.

#[derive(Serialize)]
struct ChatRequest<'a> {
    messages: &'a [Msg],
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct Msg {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

impl Msg {
    fn new(role: &'static str, content: String) -> Msg {
        Msg {
            role,
            content: Some(content),
            tool_calls: None,
            tool_call_id: None,
        }
    }
}

#[derive(Serialize, Clone)]
struct ToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall,
}

#[derive(Serialize, Clone)]
struct FunctionCall {
    name: &'static str,
    arguments: String,
}

/// An OpenAI `chat.completion` as a non-streaming call returns it.
#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: OpenAiUsage,
    service_tier: &'static str,
    system_fingerprint: &'a str,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: AnswerMessage<'a>,
    logprobs: (),
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct AnswerMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<&'a [ToolCall]>,
    refusal: (),
    annotations: [(); 0],
}

#[derive(Serialize)]
struct OpenAiUsage {
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: i64,
    audio_tokens: i64,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: i64,
    audio_tokens: i64,
    accepted_prediction_tokens: i64,
    rejected_prediction_tokens: i64,
}

/// What OpenAI sends for an internal error.
const UPSTREAM_500: &str = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;
const UPSTREAM_500_MESSAGE: &str =
    "The server had an error while processing your request. Sorry about that!";
/// The gateway's own answer when the upstream's first byte is late; the
/// gateway builds it with `json!`, whose map sorts the keys.
const GATEWAY_504: &str = r#"{"error":{"code":"upstream_timeout","message":"the upstream model server did not answer within the first-byte time limit","param":null,"type":"upstream_error"}}"#;
const GATEWAY_504_MESSAGE: &str =
    "the upstream model server did not answer within the first-byte time limit";

const EMBEDDING_MODEL: &str = "text-embedding-3-small";
const EMBEDDING_DIMENSIONS: usize = 256;
const OPENAI: &str = "https://api.openai.com/v1";

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// About four characters per token, plus the chat format's per-message cost.
fn tokens_of(text: &str) -> i64 {
    (text.len() as i64 + 3) / 4
}

fn prompt_tokens(messages: &[Msg], tools: Option<&RawValue>) -> i64 {
    let per_message: i64 = messages
        .iter()
        .map(|m| {
            let calls = m.tool_calls.as_ref().map_or(0, |c| {
                c.iter().map(|t| tokens_of(&t.function.arguments) + 8).sum()
            });
            4 + m.content.as_deref().map_or(0, tokens_of) + calls
        })
        .sum();
    per_message + 3 + tools.map_or(0, |t| tokens_of(t.get()) * 3 / 4)
}

/// Whether text has redaction placeholders, and how many.
fn placeholders(text: &str) -> i64 {
    if !text.contains('<') {
        return 0;
    }
    PLACEHOLDERS
        .iter()
        .map(|p| text.matches(p).count() as i64)
        .sum()
}

// ---------------------------------------------------------------------------
// The generator.

struct RouteGen {
    name: String,
    domain: &'static Domain,
    /// The JSON array of tool definitions, sent as is.
    tools: Box<RawValue>,
    /// Share of traffic, cumulative over routes.
    cum_share: f64,
    v2_model: String,
}

/// One chat call before it is put on the wire: what was asked and answered.
struct Exchange {
    messages: Vec<Msg>,
    tools: bool,
    max_tokens: Option<u32>,
    answer: Answer,
    finish: &'static str,
    quality: Quality,
    /// The question answered, when a better answer can be written for it.
    prompt: Option<Prompt>,
}

enum Answer {
    Text(String),
    /// The model called tools instead of answering.
    Calls(Vec<ToolCall>),
}

/// What the answer turned out to be, for the feedback that follows.
#[derive(Clone, Copy, PartialEq)]
enum Quality {
    Good,
    Bad,
    Truncated,
    Refusal,
}

struct Generator {
    rng: Rng,
    seed: u64,
    year: i64,
    clock: Clock,
    start_ms: i64,
    until_ms: i64,
    routes: Vec<RouteGen>,
    users: Vec<String>,
    /// Each user's canary bucket (0..10000), as sticky routing assigns it.
    buckets: Vec<u16>,
    /// Popular prompts per route; each draws its text from its own stream.
    popular: u64,
    /// Long prompts per route that near duplicates are made from.
    long_bases: u64,
    next: u64,
}

impl Generator {
    fn new(a: &Args, until_ms: i64) -> Generator {
        let seed = a.seed;
        let mut rng = Rng::derived(&[seed, 1]);
        // Traffic falls off by route position: 1, 1/2, 1/3, ...
        let total: f64 = (1..=a.routes.len()).map(|k| 1.0 / k as f64).sum();
        let mut cum = 0.0;
        let mut used = [false; 3];
        let routes = a
            .routes
            .iter()
            .enumerate()
            .map(|(k, name)| {
                cum += 1.0 / (k + 1) as f64 / total;
                let lower = name.to_ascii_lowercase();
                let by_name = if lower.contains("support") {
                    Some(0)
                } else if lower.contains("sales") {
                    Some(1)
                } else if lower.contains("helpdesk")
                    || lower.split(['-', '_', '.']).any(|w| w == "it")
                {
                    Some(2)
                } else {
                    None
                };
                let which = by_name.unwrap_or_else(|| (0..3).find(|&d| !used[d]).unwrap_or(k % 3));
                used[which] = true;
                let domain: &'static Domain = [&SUPPORT, &SALES, &HELPDESK][which];
                RouteGen {
                    name: name.clone(),
                    domain,
                    tools: serde_json::from_str::<Box<RawValue>>(domain.tools)
                        .expect("tool definitions are valid JSON"),
                    cum_share: cum,
                    v2_model: format!(
                        "ft:gpt-4o-mini-2024-07-18:acme:{name}-v2:{}",
                        Rng::derived(&[seed, 2, k as u64]).alnum(8)
                    ),
                }
            })
            .collect();
        // Users: about one per 25 calls, hashed the way the gateway hashes them.
        let user_count = (a.rows / 25).clamp(50, 200_000) as usize;
        let secret = Rng::derived(&[seed, 3]).bytes::<32>();
        let hasher = UserHasher::new(&secret);
        let users: Vec<String> = (0..user_count)
            .map(|u| hasher.hash(&format!("user-{u:06}")))
            .collect();
        let buckets = (0..user_count).map(|_| rng.below(10_000) as u16).collect();
        Generator {
            rng,
            seed,
            year: year_of(until_ms),
            clock: Clock::new(until_ms, a.days, a.rows),
            start_ms: until_ms - i64::from(a.days) * DAY_MS,
            until_ms,
            routes,
            users,
            buckets,
            // About 50 draws per popular prompt at any --rows, so the share
            // of exact duplicates stays near POPULAR.
            popular: (a.rows / 250).max(20),
            long_bases: ((a.rows as f64 * NEAR_DUPLICATE / 2.0) as u64).max(20),
            next: 0,
        }
    }

    fn batch(&mut self, n: usize) -> Batch {
        let mut batch = Batch {
            rows: Vec::with_capacity(n),
            feedback: Vec::with_capacity(n / 2),
        };
        for _ in 0..n {
            self.interaction(&mut batch);
        }
        batch
    }

    /// The canary's share at time `ms`, in basis points: v2 starts as a 5%
    /// canary a little past the middle of the window, grows, and is promoted
    /// near the end.
    fn canary_weight(&self, ms: i64) -> u16 {
        let f = (ms - self.start_ms) as f64 / (self.until_ms - self.start_ms) as f64;
        match f {
            f if f < 0.55 => 0,
            f if f < 0.70 => 500,
            f if f < 0.85 => 2_500,
            f if f < 0.95 => 5_000,
            _ => 10_000,
        }
    }

    fn interaction(&mut self, batch: &mut Batch) {
        let i = self.next;
        self.next += 1;
        let u = self.rng.unit();
        let at = self.clock.at(i, u);
        let id = self.rng.uuid_v7(at);
        let roll = self.rng.unit();
        if roll < EMBEDDINGS {
            batch.rows.push(self.embedding(id, at));
            return;
        }
        let pick = self.rng.unit();
        let r = self
            .routes
            .iter()
            .position(|r| pick < r.cum_share)
            .unwrap_or(self.routes.len() - 1);
        let user = self.rng.chance(USER_ID_SHARE).then(|| {
            // Heavy users: a skewed draw puts more calls on low indexes.
            let x = self.rng.unit();
            (x * x * self.users.len() as f64) as usize
        });
        let bucket = match user {
            Some(u) => self.buckets[u],
            None => self.rng.below(10_000) as u16,
        };
        let v2 = bucket < self.canary_weight(at);
        let domain = self.routes[r].domain;
        let mut row = InteractionRow {
            id,
            created_at_ms: at,
            endpoint: "chat.completions".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            route: self.routes[r].name.clone(),
            requested_model: Some(self.routes[r].name.clone()),
            version: if v2 { "v2" } else { "v1" }.into(),
            upstream: OPENAI.into(),
            app: Some(self.rng.pick(domain.apps).to_string()),
            user_hash: user.map(|u| self.users[u].clone()),
            redaction: "redacted".into(),
            ..Default::default()
        };
        if self.rng.chance(0.5) {
            row.session_id = Some(format!("sess_{}", self.rng.hex(16)));
        }
        if self.rng.chance(0.4) {
            let tenant = self.rng.pick(&["acme-us", "acme-eu", "acme-uk"]);
            row.metadata.insert("tenant".into(), tenant.into());
            if self.rng.chance(0.5) {
                let feature = self.rng.pick(&["chat", "search", "onboarding", "checkout"]);
                row.metadata.insert("feature".into(), feature.into());
            }
        }

        if roll < EMBEDDINGS + FAILED {
            self.failed(&mut row, r);
            batch.rows.push(row);
            return;
        }
        if let Some((quality, prompt)) = self.chat(&mut row, r, v2) {
            self.feedback(&row, quality, prompt.as_ref(), domain, &mut batch.feedback);
        }
        batch.rows.push(row);
    }

    /// The final user question: popular (exact duplicate), near duplicate, or fresh.
    fn user_question(&mut self, r: usize) -> Prompt {
        let d = self.routes[r].domain;
        let roll = self.rng.unit();
        if roll < POPULAR {
            // Zipf-like: low pool indexes are asked far more often.
            let x = self.rng.unit();
            let k = (x * x * self.popular as f64) as u64;
            let mut pool_rng = Rng::derived(&[self.seed, 4, r as u64, k]);
            return question(d, &mut pool_rng, Shape::Popular, self.year);
        }
        if roll < POPULAR + NEAR_DUPLICATE {
            // A long question asked about twice: once as it is or with one
            // word changed, so most draws are near, not exact, duplicates.
            let k = self.rng.below(self.long_bases as usize) as u64;
            let mut base_rng = Rng::derived(&[self.seed, 5, r as u64, k]);
            let mut p = question(d, &mut base_rng, Shape::Long, self.year);
            if self.rng.chance(0.75) {
                if let Some(edited) = swap_one_word(&p.text, &mut self.rng) {
                    p.text = edited;
                }
            }
            return p;
        }
        let shape = if self.rng.chance(0.12) {
            Shape::Long
        } else {
            Shape::Fresh
        };
        question(d, &mut self.rng, shape, self.year)
    }

    fn system_message(&self, r: usize) -> Msg {
        Msg::new("system", self.routes[r].domain.system.to_string())
    }

    /// A chat call that got an answer. Returns, when a person could react to
    /// it, what the answer is like and the question it answered (none for a
    /// refusal: there is nothing to correct).
    fn chat(
        &mut self,
        row: &mut InteractionRow,
        r: usize,
        v2: bool,
    ) -> Option<(Quality, Option<Prompt>)> {
        // Shares among chat calls, so that they come out as shares of all calls.
        let kind = self.rng.unit() * (1.0 - EMBEDDINGS - FAILED);
        let ex = if kind < TOOL_CALLS {
            self.tool_exchange(r, false)
        } else if kind < TOOL_CALLS + TOOL_FOLLOW_UPS {
            self.tool_exchange(r, true)
        } else {
            let multi_turn = kind < TOOL_CALLS + TOOL_FOLLOW_UPS + MULTI_TURN;
            if multi_turn && row.session_id.is_none() {
                row.session_id = Some(format!("sess_{}", self.rng.hex(16)));
            }
            self.text_exchange(r, v2, multi_turn)
        };
        self.answered(row, r, v2, &ex);
        // Tool calls go back to the program, not to a person: no feedback.
        match ex.answer {
            Answer::Text(_) => Some((ex.quality, ex.prompt)),
            Answer::Calls(_) => None,
        }
    }

    /// A question a tool answers: the model's call, or (`follow_up`) the next
    /// step, where the client sends the tool's result and gets the answer.
    fn tool_exchange(&mut self, r: usize, follow_up: bool) -> Exchange {
        let d = self.routes[r].domain;
        let with_tools: Vec<&'static Intent> =
            d.intents.iter().filter(|x| x.tool.is_some()).collect();
        let intent = self.rng.pick(&with_tools);
        let tool = intent.tool.as_ref().expect("intent has a tool");
        let p = question_for(d, intent, &mut self.rng, Shape::Fresh, self.year);
        let mut arguments = String::new();
        fill(&mut arguments, tool.args, &p.slots);
        let call = ToolCall {
            id: format!("call_{}", self.rng.alnum(24)),
            kind: "function",
            function: FunctionCall {
                name: tool.name,
                arguments,
            },
        };
        let mut messages = vec![self.system_message(r), Msg::new("user", p.text.clone())];
        if !follow_up {
            return Exchange {
                messages,
                tools: true,
                max_tokens: None,
                answer: Answer::Calls(vec![call]),
                finish: "tool_calls",
                quality: Quality::Good,
                prompt: None,
            };
        }
        let mut result = String::new();
        fill(&mut result, tool.result, &p.slots);
        let call_id = call.id.clone();
        messages.push(Msg {
            role: "assistant",
            content: None,
            tool_calls: Some(vec![call]),
            tool_call_id: None,
        });
        messages.push(Msg {
            role: "tool",
            content: Some(result),
            tool_calls: None,
            tool_call_id: Some(call_id),
        });
        Exchange {
            messages,
            tools: true,
            max_tokens: None,
            answer: Answer::Text(good_answer(d, &p, &mut self.rng)),
            finish: "stop",
            quality: Quality::Good,
            prompt: Some(p),
        }
    }

    /// A question answered in text: good or bad, sometimes refused or cut at
    /// `max_tokens`, after earlier turns when `multi_turn`.
    fn text_exchange(&mut self, r: usize, v2: bool, multi_turn: bool) -> Exchange {
        let d = self.routes[r].domain;
        let mut messages = vec![self.system_message(r)];
        if multi_turn {
            // History: an earlier question and answer, sometimes two.
            for _ in 0..1 + usize::from(self.rng.chance(0.3)) {
                let earlier = question(d, &mut self.rng, Shape::Fresh, self.year);
                let lead = self.rng.pick(earlier.answers);
                let answer = answer_text(d, lead, &earlier.slots, &mut self.rng, 25, 70);
                messages.push(Msg::new("user", earlier.text));
                messages.push(Msg::new("assistant", answer));
            }
        }
        let mut max_tokens = self.rng.chance(0.3).then(|| self.rng.pick(&[512, 1024]));
        let modifier = self.rng.unit() * (1.0 - EMBEDDINGS - FAILED - TOOL_CALLS - TOOL_FOLLOW_UPS);
        if modifier < REFUSALS {
            let slots = Slots::draw(&mut self.rng, self.year);
            let mut ask = String::new();
            fill(&mut ask, self.rng.pick(d.refusal_asks), &slots);
            messages.push(Msg::new("user", ask));
            let mut content = self.rng.pick(REFUSAL_OPENINGS).to_string();
            for part in [REFUSAL_REASONS, REFUSAL_OFFERS] {
                if self.rng.chance(0.7) {
                    content.push(' ');
                    content.push_str(self.rng.pick(part));
                }
            }
            return Exchange {
                messages,
                tools: false,
                max_tokens,
                answer: Answer::Text(content),
                finish: "stop",
                quality: Quality::Refusal,
                prompt: None,
            };
        }
        let p = if multi_turn && self.rng.chance(0.5) {
            let (ask, leads) = self.rng.pick(FOLLOW_UPS);
            Prompt {
                text: ask.to_string(),
                answers: leads,
                slots: Slots::draw(&mut self.rng, self.year),
            }
        } else {
            self.user_question(r)
        };
        messages.push(Msg::new("user", p.text.clone()));
        let good = self.rng.chance(if v2 { GOOD_V2 } else { GOOD_V1 });
        let (content, finish, quality) = if modifier < REFUSALS + TRUNCATED {
            // A long answer cut mid-sentence at a small max_tokens.
            let limit = self.rng.pick(&[48u32, 64, 80, 96]);
            let lead = self.rng.pick(p.answers);
            let long = answer_text(d, lead, &p.slots, &mut self.rng, 110, 130);
            let keep = (limit as usize * 3 / 4).min(words(&long) - 5);
            let cut = long.split(' ').take(keep).collect::<Vec<_>>().join(" ");
            let cut = cut.trim_end_matches(|c: char| c.is_ascii_punctuation());
            max_tokens = Some(limit);
            (cut.to_string(), "length", Quality::Truncated)
        } else if good {
            (good_answer(d, &p, &mut self.rng), "stop", Quality::Good)
        } else {
            (bad_answer(d, &p.slots, &mut self.rng), "stop", Quality::Bad)
        };
        Exchange {
            messages,
            tools: false,
            max_tokens,
            answer: Answer::Text(content),
            finish,
            quality,
            prompt: Some(p),
        }
    }

    /// Fills the row as the gateway records a successful chat call: the body
    /// as sent, OpenAI's answer (assembled from chunks when streamed), usage,
    /// timings, and bodies re-encoded where redaction changed their text.
    fn answered(&mut self, row: &mut InteractionRow, r: usize, v2: bool, ex: &Exchange) {
        let stream = self.rng.chance(STREAMED);
        let wants_usage = stream && self.rng.chance(0.5);
        let tools = ex.tools.then(|| &*self.routes[r].tools);
        let request = ChatRequest {
            messages: &ex.messages,
            model: &row.route,
            max_tokens: ex.max_tokens,
            stream: stream.then_some(true),
            stream_options: wants_usage.then_some(StreamOptions {
                include_usage: true,
            }),
            temperature: self.rng.pick(&[0.0, 0.2, 0.3, 0.5, 0.7, 1.0]),
            tool_choice: ex.tools.then_some("auto"),
            tools,
        };
        let request_body = serde_json::to_string(&request).expect("requests serialize");
        let (text, calls) = match &ex.answer {
            Answer::Text(t) => (Some(t.as_str()), None),
            Answer::Calls(c) => (None, Some(c.as_slice())),
        };
        let prompt_toks = prompt_tokens(&ex.messages, tools);
        let completion_toks = match (text, calls) {
            _ if ex.finish == "length" => i64::from(ex.max_tokens.unwrap_or(64)),
            (Some(t), _) => tokens_of(t),
            (None, c) => c
                .unwrap_or_default()
                .iter()
                .map(|c| tokens_of(&c.function.arguments) + 9)
                .sum(),
        };
        let model = if v2 {
            self.routes[r].v2_model.as_str()
        } else {
            "gpt-4o-mini-2024-07-18"
        };
        let fingerprint = if v2 { "fp_7c5f6a2b1e" } else { "fp_0ba0d124f1" };
        let id = format!("chatcmpl-{}", self.rng.alnum(29));
        let created = row.created_at_ms / 1000;
        let response_body = if stream {
            // The gateway assembles the chunks into one object with sorted keys.
            let mut message = json!({"role": "assistant", "content": text});
            if let Some(calls) = calls {
                message["tool_calls"] = serde_json::to_value(calls).expect("calls serialize");
            }
            json!({
                "id": id, "created": created, "model": model,
                "system_fingerprint": fingerprint, "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": ex.finish}],
                "usage": {"prompt_tokens": prompt_toks, "completion_tokens": completion_toks,
                          "total_tokens": prompt_toks + completion_toks},
            })
            .to_string()
        } else {
            let completion = Completion {
                id: &id,
                object: "chat.completion",
                created,
                model,
                choices: [CompletionChoice {
                    index: 0,
                    message: AnswerMessage {
                        role: "assistant",
                        content: text,
                        tool_calls: calls,
                        refusal: (),
                        annotations: [],
                    },
                    logprobs: (),
                    finish_reason: ex.finish,
                }],
                usage: OpenAiUsage {
                    prompt_tokens: prompt_toks,
                    completion_tokens: completion_toks,
                    total_tokens: prompt_toks + completion_toks,
                    prompt_tokens_details: PromptDetails {
                        cached_tokens: 0,
                        audio_tokens: 0,
                    },
                    completion_tokens_details: CompletionDetails {
                        reasoning_tokens: 0,
                        audio_tokens: 0,
                        accepted_prediction_tokens: 0,
                        rejected_prediction_tokens: 0,
                    },
                },
                service_tier: "default",
                system_fingerprint: fingerprint,
            };
            serde_json::to_string(&completion).expect("responses serialize")
        };
        let (req_pii, resp_pii) = (placeholders(&request_body), placeholders(&response_body));
        // The gateway keeps a redacted body's bytes and rewrites only the
        // strings that changed, which here already hold their placeholders.
        row.request_body = request_body;
        row.response_body = Some(response_body);
        row.pii_found = req_pii + resp_pii;
        row.stream = stream;
        row.status = 200;
        row.outcome = "ok".into();
        row.finish_reason = Some(ex.finish.into());
        row.prompt_tokens = Some(prompt_toks);
        row.completion_tokens = Some(completion_toks);
        row.total_tokens = Some(prompt_toks + completion_toks);
        let per_token = self.rng.uniform(8.0, 16.0);
        let ttft = 180.0 + prompt_toks as f64 * 0.08 + self.rng.log_uniform(20.0, 900.0);
        let latency = ttft + completion_toks as f64 * per_token;
        row.latency_ms = micros(latency);
        // Without streaming the gateway's "first byte" is the response headers.
        row.ttft_ms = Some(micros(if stream {
            ttft
        } else {
            latency - self.rng.uniform(0.2, 3.0)
        }));
    }

    /// A chat call that failed: an upstream 500 or the gateway's 504.
    fn failed(&mut self, row: &mut InteractionRow, r: usize) {
        let stream = self.rng.chance(STREAMED);
        let p = self.user_question(r);
        let messages = [self.system_message(r), Msg::new("user", p.text)];
        let request = ChatRequest {
            messages: &messages,
            model: &row.route,
            max_tokens: None,
            stream: stream.then_some(true),
            stream_options: None,
            temperature: self.rng.pick(&[0.2, 0.3, 0.7]),
            tool_choice: None,
            tools: None,
        };
        let body = serde_json::to_string(&request).expect("requests serialize");
        row.pii_found = placeholders(&body);
        row.request_body = body;
        row.stream = stream;
        if self.rng.chance(FAILED_500) {
            // The upstream's error passes through; its message becomes the error.
            row.status = 500;
            row.outcome = "upstream_error".into();
            row.response_body = Some(UPSTREAM_500.into());
            row.error = Some(UPSTREAM_500_MESSAGE.into());
            let latency = self.rng.log_uniform(80.0, 4_000.0);
            row.latency_ms = micros(latency);
            row.ttft_ms = Some(micros(latency - self.rng.uniform(0.1, 1.0)));
        } else {
            // The gateway gave up waiting (first_byte_timeout_ms = 60000).
            row.status = 504;
            row.outcome = "timeout".into();
            row.response_body = Some(GATEWAY_504.into());
            row.error = Some(GATEWAY_504_MESSAGE.into());
            row.latency_ms = micros(60_000.0 + self.rng.uniform(0.3, 4.0));
        }
    }

    fn embedding(&mut self, id: String, at: i64) -> InteractionRow {
        let d = self.rng.pick(&[&SUPPORT, &SALES, &HELPDESK]);
        let mut input = String::new();
        // A few consecutive sentences of a help article, as an indexer sends them.
        let first = self.rng.below(d.fillers.len());
        for k in 0..self.rng.range(2, 5) as usize {
            if !input.is_empty() {
                input.push(' ');
            }
            input.push_str(d.fillers[(first + k) % d.fillers.len()]);
        }
        let request = json!({
            "input": input, "model": EMBEDDING_MODEL,
            "encoding_format": "base64", "dimensions": EMBEDDING_DIMENSIONS,
        });
        let tokens = tokens_of(&input);
        let mut raw = Vec::with_capacity(EMBEDDING_DIMENSIONS * 4);
        for _ in 0..EMBEDDING_DIMENSIONS {
            let x = (self.rng.unit() - 0.5) as f32 * 0.125;
            raw.extend_from_slice(&x.to_le_bytes());
        }
        let response = format!(
            r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":"{}"}}],"model":"{EMBEDDING_MODEL}","usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}"#,
            base64(&raw)
        );
        let latency = self.rng.log_uniform(40.0, 400.0);
        InteractionRow {
            id,
            created_at_ms: at,
            endpoint: "embeddings".into(),
            method: "POST".into(),
            path: "/v1/embeddings".into(),
            // Embedding model names are not routes: the default route serves them.
            route: "default".into(),
            requested_model: Some(EMBEDDING_MODEL.into()),
            version: "default".into(),
            upstream: OPENAI.into(),
            status: 200,
            outcome: "ok".into(),
            stream: false,
            request_body: request.to_string(),
            response_body: Some(response),
            latency_ms: micros(latency),
            ttft_ms: Some(micros(latency - self.rng.uniform(0.1, 1.0))),
            prompt_tokens: Some(tokens),
            completion_tokens: Some(0),
            total_tokens: Some(tokens),
            app: Some("search-indexer".into()),
            redaction: "redacted".into(),
            ..Default::default()
        }
    }

    /// Feedback on one answer, shaped by how good the answer was.
    fn feedback(
        &mut self,
        row: &InteractionRow,
        quality: Quality,
        prompt: Option<&Prompt>,
        d: &Domain,
        out: &mut Vec<FeedbackRow>,
    ) {
        let good = quality == Quality::Good;
        let after = |rng: &mut Rng, lo: f64, hi: f64| -> i64 {
            row.created_at_ms + row.latency_ms as i64 + rng.log_uniform(lo, hi) as i64
        };
        let mut thumbs = self.rng.chance(0.25).then(|| {
            let up = self.rng.chance(if good { 0.88 } else { 0.12 });
            (up, after(&mut self.rng, 3_000.0, 600_000.0))
        });
        let correction = prompt.is_some() && self.rng.chance(if good { 0.01 } else { 0.11 });
        if correction && thumbs.is_none() && self.rng.chance(0.5) {
            // Users who bother to correct usually vote down first.
            thumbs = Some((false, after(&mut self.rng, 3_000.0, 60_000.0)));
        }
        if let Some((up, at)) = thumbs {
            self.push_feedback(
                row,
                at,
                "thumbs",
                json!(if up { "up" } else { "down" }),
                None,
                out,
            );
            if self.rng.chance(0.02) {
                // A change of mind: the later vote is the one that counts.
                let later = at + self.rng.log_uniform(2_000.0, 120_000.0) as i64;
                self.push_feedback(
                    row,
                    later,
                    "thumbs",
                    json!(if up { "down" } else { "up" }),
                    None,
                    out,
                );
            }
        }
        if let Some(prompt) = prompt.filter(|_| correction) {
            let better = good_answer(d, prompt, &mut self.rng);
            let value = if self.rng.chance(0.7) {
                json!(better)
            } else {
                json!({"role": "assistant", "content": better})
            };
            let at = after(&mut self.rng, 30_000.0, 1_800_000.0);
            self.push_feedback(row, at, "correction", value, None, out);
        }
        if self.rng.chance(0.04) {
            let weights: &[f64] = if good {
                &[0.0, 0.02, 0.08, 0.40, 0.50]
            } else {
                &[0.45, 0.35, 0.15, 0.05, 0.0]
            };
            let mut x = self.rng.unit();
            let mut stars = 5;
            for (k, w) in weights.iter().enumerate() {
                if x < *w {
                    stars = k + 1;
                    break;
                }
                x -= w;
            }
            let scale = self.rng.chance(0.4).then(|| json!([1, 5]));
            let at = after(&mut self.rng, 5_000.0, 300_000.0);
            self.push_feedback(row, at, "rating", json!(stars), scale, out);
        }
        if self.rng.chance(0.02) {
            let success = self.rng.chance(if good { 0.9 } else { 0.15 });
            // Outcomes arrive late: the ticket closed, the deal moved on.
            let at = after(&mut self.rng, 60_000.0, 172_800_000.0);
            self.push_feedback(row, at, "outcome", json!(success), None, out);
        }
        if self.rng.chance(0.02) {
            let text = if good {
                self.rng.pick(&[
                    "Perfect, that's exactly what I needed.",
                    "Quick and clear, thanks!",
                    "Helpful, solved my problem.",
                    "Great answer, saved me a call.",
                ])
            } else {
                self.rng.pick(&[
                    "This didn't answer my question.",
                    "Too generic, I already knew that.",
                    "Wrong information, the policy changed.",
                    "The answer stopped in the middle.",
                    "Not helpful, I had to call anyway.",
                ])
            };
            let at = after(&mut self.rng, 10_000.0, 900_000.0);
            self.push_feedback(row, at, "comment", json!(text), None, out);
        }
    }

    /// Builds a feedback body as a client would send it and stores what the
    /// gateway's own validation makes of it (label, score, scale, hash).
    fn push_feedback(
        &mut self,
        row: &InteractionRow,
        at: i64,
        kind: &str,
        value: Value,
        scale: Option<Value>,
        out: &mut Vec<FeedbackRow>,
    ) {
        let mut body = json!({"interaction_id": row.id, "type": kind, "value": value});
        if let Some(s) = scale {
            body["scale"] = s;
        }
        if self.rng.chance(0.15) {
            let source = self.rng.pick(&["widget", "email_survey", "agent_console"]);
            body["metadata"] = json!({ "source": source });
        }
        let key = self.rng.chance(0.35).then(|| self.rng.uuid_v4());
        let new = flywheel::feedback::parse(body.to_string().as_bytes(), key.as_deref())
            .expect("generated feedback is valid");
        // Feedback cannot be given before the answer, nor after the window.
        let at = at.min(self.until_ms).max(row.created_at_ms + 1);
        out.push(FeedbackRow {
            id: self.rng.uuid_v7(at),
            interaction_id: new.interaction_id.to_string(),
            created_at_ms: at,
            route: row.route.clone(),
            version: row.version.clone(),
            kind: new.kind.to_string(),
            value: new.value,
            label: new.label.map(str::to_string),
            score: new.score,
            scale: new.scale,
            app: row.app.clone(),
            // The user is passed in the x-flywheel-user header, as with the call.
            user_hash: row.user_hash.clone().filter(|_| self.rng.chance(0.9)),
            metadata: new.metadata,
            idempotency_key: new.idempotency_key,
            request_hash: new.request_hash,
        });
    }
}

/// Milliseconds with microsecond precision, as a measured duration gives.
fn micros(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

//! The simulated users' profiles: European names from small built-in
//! lists, e-mail addresses on the reserved `example.*` domains, Lithuanian
//! mobile numbers.
//!
//! Some names carry diacritics and apostrophes on purpose, so that
//! downstream systems see real-world text; e-mail addresses are folded to
//! ASCII, as real ones usually are.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const FIRST_NAMES: &[&str] = &[
    "Anna", "Lukas", "Emma", "Jonas", "Sofia", "Mateo", "Ieva", "Oskar", "Elena", "Marek", "Chloé",
    "Tomás", "Greta", "Felix", "Maja", "Luca", "Ingrid", "Pavel", "Zoé", "Andrius", "Léa", "Björn",
    "Agnė", "Nikolai",
];

const LAST_NAMES: &[&str] = &[
    "Kazlauskas",
    "Müller",
    "García",
    "Rossi",
    "Novak",
    "Jansen",
    "Dubois",
    "Nowak",
    "Petrauskas",
    "Silva",
    "Larsen",
    "Horvat",
    "Schmidt",
    "Moreau",
    "Bianchi",
    "Kowalski",
    "Lindqvist",
    "O'Brien",
    "Ivanova",
    "Fernández",
    "Šimkus",
    "Virtanen",
];

/// Registration addresses use the first; changed ones move to another.
const EMAIL_DOMAINS: &[&str] = &["example.com", "example.org", "example.net"];

/// A user's profile, as `UserRegistered` and `UserUpdated` carry it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Profile {
    pub first_name: Option<String>,
    pub last_name: String,
    pub email: String,
    pub phone: Option<String>,
}

/// The profile of the `number`th user to register (`number` makes the
/// e-mail address unique). One in ten gives no first name, one in five no
/// phone.
pub(crate) fn new_profile(rng: &mut ChaCha8Rng, number: usize) -> Profile {
    let first_name = (!rng.random_bool(0.1)).then(|| pick(rng, FIRST_NAMES));
    let last_name = pick(rng, LAST_NAMES);
    let email = email(first_name.as_deref(), &last_name, number, EMAIL_DOMAINS[0]);
    let phone = (!rng.random_bool(0.2)).then(|| phone(rng));
    Profile {
        first_name,
        last_name,
        email,
        phone,
    }
}

/// `profile` after one plausible change (never none): a new e-mail address
/// or phone, a first name or phone added, the phone removed, or a new family
/// name.
pub(crate) fn changed_profile(rng: &mut ChaCha8Rng, profile: &Profile, number: usize) -> Profile {
    let mut next = profile.clone();
    match rng.random_range(0..10) {
        0..=3 => {
            let current = profile.email.rsplit('@').next().unwrap_or_default();
            let domain = EMAIL_DOMAINS
                .iter()
                .copied()
                .filter(|d| *d != current)
                .collect::<Vec<_>>()
                .choose(rng)
                .copied()
                .expect("more than one e-mail domain");
            next.email = email(
                profile.first_name.as_deref(),
                &profile.last_name,
                number,
                domain,
            );
        }
        4..=6 => {
            let old = profile.phone.clone();
            while next.phone == old {
                next.phone = Some(phone(rng));
            }
        }
        7 if profile.first_name.is_none() => next.first_name = Some(pick(rng, FIRST_NAMES)),
        8 if profile.phone.is_some() => next.phone = None,
        _ => {
            while next.last_name == profile.last_name {
                next.last_name = pick(rng, LAST_NAMES);
            }
        }
    }
    next
}

fn pick(rng: &mut ChaCha8Rng, names: &[&str]) -> String {
    (*names.choose(rng).expect("name lists are not empty")).to_owned()
}

/// `first.last.N@domain` (or `last.N@domain` without a first name), in
/// lower-case ASCII.
fn email(first: Option<&str>, last: &str, number: usize, domain: &str) -> String {
    let local = match first {
        Some(first) => format!("{}.{}", ascii_fold(first), ascii_fold(last)),
        None => ascii_fold(last),
    };
    format!("{local}.{number}@{domain}")
}

/// `+3706` and seven digits: a Lithuanian mobile number in E.164 form.
fn phone(rng: &mut ChaCha8Rng) -> String {
    format!("+3706{:07}", rng.random_range(0..10_000_000))
}

/// Lower-case ASCII letters of `name`: the diacritics of the name lists
/// folded to their base letter, anything else (apostrophes) dropped.
fn ascii_fold(name: &str) -> String {
    name.chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            'a'..='z' => Some(c),
            'á' | 'à' | 'ä' | 'ą' => Some('a'),
            'é' | 'è' | 'ė' | 'ę' => Some('e'),
            'í' | 'į' => Some('i'),
            'ó' | 'ö' => Some('o'),
            'ú' | 'ü' | 'ū' | 'ų' => Some('u'),
            'š' => Some('s'),
            'ž' => Some('z'),
            'č' => Some('c'),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn names_fold_to_lower_case_ascii() {
        for name in FIRST_NAMES.iter().chain(LAST_NAMES) {
            let folded = ascii_fold(name);
            assert!(folded.len() >= 3, "{name} folds to {folded:?}");
            assert!(
                folded.bytes().all(|b| b.is_ascii_lowercase()),
                "{name} folds to {folded:?}"
            );
        }
        assert_eq!(ascii_fold("O'Brien"), "obrien");
        assert_eq!(ascii_fold("Šimkus"), "simkus");
        assert_eq!(ascii_fold("Fernández"), "fernandez");
    }

    #[test]
    fn profiles_follow_the_formats() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let profiles: Vec<Profile> = (1..=500).map(|n| new_profile(&mut rng, n)).collect();
        for (n, p) in (1..).zip(&profiles) {
            let local = match &p.first_name {
                Some(f) => format!("{}.{}", ascii_fold(f), ascii_fold(&p.last_name)),
                None => ascii_fold(&p.last_name),
            };
            assert_eq!(p.email, format!("{local}.{n}@example.com"));
            if let Some(phone) = &p.phone {
                let digits = phone.strip_prefix("+3706").expect("a +3706 number");
                assert_eq!(digits.len(), 7, "{phone}");
                assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{phone}");
            }
        }
        let no_first = profiles.iter().filter(|p| p.first_name.is_none()).count();
        let no_phone = profiles.iter().filter(|p| p.phone.is_none()).count();
        assert!(
            (20..=80).contains(&no_first),
            "{no_first} of 500 without a first name"
        );
        assert!(
            (60..=140).contains(&no_phone),
            "{no_phone} of 500 without a phone"
        );
    }

    #[test]
    fn a_change_changes_exactly_one_field_and_keeps_the_email_unique() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for n in 1..=2000 {
            let before = new_profile(&mut rng, n);
            let after = changed_profile(&mut rng, &before, n);
            let changed = [
                before.first_name != after.first_name,
                before.last_name != after.last_name,
                before.email != after.email,
                before.phone != after.phone,
            ];
            assert_eq!(
                changed.iter().filter(|c| **c).count(),
                1,
                "{before:?} -> {after:?}"
            );
            assert!(
                after.email.ends_with(&format!(".{n}@example.com"))
                    || after.email.ends_with(&format!(".{n}@example.org"))
                    || after.email.ends_with(&format!(".{n}@example.net")),
                "{}",
                after.email
            );
        }
    }
}

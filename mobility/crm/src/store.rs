//! The CRM's data, in memory: users and trips, each kept in creation order
//! (lists return them that way) with an index by id. Nothing is ever
//! deleted one by one, only all at once by a reset, so positions in the
//! order never shift.

use std::collections::HashMap;

use crate::contracts::{Record, Trip, User};

/// Every record the CRM holds.
#[derive(Debug, Default)]
pub struct Store {
    pub users: Table<User>,
    pub trips: Table<Trip>,
}

/// Records of one kind, in creation order, indexed by id.
#[derive(Debug)]
pub struct Table<T> {
    records: Vec<T>,
    positions: HashMap<String, usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            positions: HashMap::new(),
        }
    }
}

/// Creation refused: the id is taken.
#[derive(Debug, PartialEq, Eq)]
pub struct IdTaken;

/// Replacement refused: no record has the id.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownId;

impl<T: Record> Table<T> {
    pub fn all(&self) -> &[T] {
        &self.records
    }

    pub fn get(&self, id: &str) -> Option<&T> {
        self.positions
            .get(id)
            .map(|&position| &self.records[position])
    }

    pub fn contains(&self, id: &str) -> bool {
        self.positions.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Adds a record at the end of the order.
    pub fn create(&mut self, record: T) -> Result<(), IdTaken> {
        if self.contains(record.id()) {
            return Err(IdTaken);
        }
        self.positions
            .insert(record.id().to_owned(), self.records.len());
        self.records.push(record);
        Ok(())
    }

    /// Replaces the record with the same id, keeping its place in the order.
    pub fn replace(&mut self, record: T) -> Result<(), UnknownId> {
        let &position = self.positions.get(record.id()).ok_or(UnknownId)?;
        self.records[position] = record;
        Ok(())
    }

    pub fn clear(&mut self) {
        self.records.clear();
        self.positions.clear();
    }
}

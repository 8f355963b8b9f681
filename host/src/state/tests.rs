//! State layer tests (filled below).

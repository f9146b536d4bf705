//! Identity and content addressing: ids ([`id`]), manifests that tie chunks to an id
//! ([`manifest`]), folder listings that give a tree one id ([`folder`]), and the rules for
//! names and for text shown on a terminal ([`names`]). The bottom layer: it depends on
//! nothing else in the crate.

pub mod folder;
pub mod id;
pub mod manifest;
pub mod names;

//! `report.html`: one self-contained page, readable offline.

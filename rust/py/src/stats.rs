//! Binding of the core's HDR histogram (`stats::hdr`) as `tunnelswarm._core.Histogram`.
//! Stubs: `python/tunnelswarm/_core.pyi`.
//!
//! Conventions: values are integers (the load engine records microseconds); a value
//! above `highest` is recorded as `highest` and one below zero as 0, both counted in
//! `clamped` (a load run never dies of a stats oddity). A bad layout or percentile is a
//! `ConfigError`; bytes that are not an encoded histogram are a `RemoteProtocolError`
//! (they come from another process). Errors are converted in one place, [`hdr_err`].

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use tunnelswarm_proto::stats::{DecodeError, Histogram as CoreHistogram, LayoutError};

use crate::{ConfigError, RemoteProtocolError};

/// The one conversion of histogram errors into Python exceptions.
enum HdrErr {
    Layout(LayoutError),
    Decode(DecodeError),
}

fn hdr_err(e: HdrErr) -> PyErr {
    match e {
        HdrErr::Layout(e) => ConfigError::new_err(e.to_string()),
        HdrErr::Decode(e) => RemoteProtocolError::new_err(e.to_string()),
    }
}

fn quantile(p: f64) -> PyResult<f64> {
    if (0.0..=100.0).contains(&p) {
        Ok(p / 100.0)
    } else {
        Err(ConfigError::new_err(format!(
            "percentile {p} is not between 0 and 100"
        )))
    }
}

/// An HDR histogram of integer values (microseconds by convention).
#[pyclass(module = "tunnelswarm._core", eq)]
#[derive(Clone, PartialEq)]
pub struct Histogram {
    inner: CoreHistogram,
}

#[pymethods]
impl Histogram {
    #[new]
    // literals, so that the text signature (and stubtest) shows them
    #[pyo3(signature = (lowest=1, highest=3_600_000_000, sigfig=3))]
    fn new(lowest: u64, highest: u64, sigfig: u8) -> PyResult<Self> {
        CoreHistogram::new(lowest, highest, sigfig)
            .map(|inner| Self { inner })
            .map_err(|e| hdr_err(HdrErr::Layout(e)))
    }

    #[pyo3(signature = (value, count=1))]
    fn record(&mut self, value: i128, count: u64) {
        if value < 0 {
            self.inner.record_below_zero(count);
        } else {
            self.inner
                .record_n(u64::try_from(value).unwrap_or(u64::MAX), count);
        }
    }

    fn merge(slf: &Bound<'_, Self>, other: &Bound<'_, Self>) {
        if slf.is(other) {
            let copy = slf.borrow().inner.clone();
            slf.borrow_mut().inner.merge(&copy);
        } else {
            let other = other.borrow();
            slf.borrow_mut().inner.merge(&other.inner);
        }
    }

    fn value_at_percentile(&self, p: f64) -> PyResult<u64> {
        Ok(self.inner.value_at_quantile(quantile(p)?))
    }

    fn percentiles(&self, ps: Vec<f64>) -> PyResult<Vec<u64>> {
        ps.into_iter()
            .map(|p| Ok(self.inner.value_at_quantile(quantile(p)?)))
            .collect()
    }

    fn buckets(&self) -> Vec<(u64, u64, u64)> {
        self.inner
            .iter_recorded()
            .map(|b| (b.lowest, b.highest, b.count))
            .collect()
    }

    fn reset(&mut self) {
        self.inner.reset();
    }

    fn copy(&self) -> Self {
        self.clone()
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.encode())
    }

    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        CoreHistogram::decode(data)
            .map(|inner| Self { inner })
            .map_err(|e| hdr_err(HdrErr::Decode(e)))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let from_bytes = py.get_type::<Self>().getattr("from_bytes")?;
        let data = slf.borrow().to_bytes(py);
        PyTuple::new(py, [from_bytes, PyTuple::new(py, [data])?.into_any()])
    }

    #[getter]
    fn count(&self) -> u64 {
        self.inner.len()
    }

    #[getter]
    fn clamped(&self) -> u64 {
        self.inner.clamped()
    }

    #[getter]
    fn min(&self) -> u64 {
        self.inner.min()
    }

    #[getter]
    fn max(&self) -> u64 {
        self.inner.max()
    }

    #[getter]
    fn mean(&self) -> f64 {
        self.inner.mean()
    }

    #[getter]
    fn stdev(&self) -> f64 {
        self.inner.stdev()
    }

    #[getter]
    fn lowest(&self) -> u64 {
        self.inner.lowest()
    }

    #[getter]
    fn highest(&self) -> u64 {
        self.inner.highest()
    }

    #[getter]
    fn sigfig(&self) -> u8 {
        self.inner.sigfig()
    }

    fn __repr__(&self) -> String {
        format!(
            "Histogram(lowest={}, highest={}, sigfig={}, count={}, clamped={})",
            self.inner.lowest(),
            self.inner.highest(),
            self.inner.sigfig(),
            self.inner.len(),
            self.inner.clamped()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Histogram>()?;
    Ok(())
}

//! A host for tests: answers from memory what Envoy would, applies what the
//! exchange sets, and records every call, so a test can assert both the
//! outcome of a whole exchange and the exact host calls it made.

use crate::headers::Headers;
use crate::host::{Body, HeaderMap, Host, Status};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The local reply an exchange sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct RecordingHost {
    pub request_headers: RefCell<Vec<(String, Vec<u8>)>>,
    pub response_headers: RefCell<Vec<(String, Vec<u8>)>>,
    pub request_body: RefCell<Vec<u8>>,
    /// The response body buffer: the chunk being delivered (or all of it
    /// while the exchange holds it).
    pub response_body: RefCell<Vec<u8>>,
    /// Properties the host answers (`response.code_details`), and the ones set.
    pub properties: RefCell<BTreeMap<String, Vec<u8>>>,
    pub reply: RefCell<Option<SentReply>>,
    pub foreign_calls: RefCell<Vec<(String, Vec<u8>)>>,
    /// Counter names by id, and their values.
    pub counters: RefCell<Vec<(String, i64)>>,
    /// Gauge names by id, and their values.
    pub gauges: RefCell<Vec<(String, u64)>>,
    /// Histogram names by id, and the samples recorded.
    pub histograms: RefCell<Vec<(String, Vec<u64>)>>,
    /// The HTTP calls dispatched: cluster, headers, timeout in ms. A call's
    /// token is its place in this list plus one.
    pub dispatched: RefCell<Vec<(String, Vec<(String, String)>, u64)>>,
    /// The answer to the HTTP call being delivered: headers and body.
    pub call_response_headers: RefCell<Vec<(String, Vec<u8>)>>,
    pub call_response_body: RefCell<Vec<u8>>,
    /// The clock, in ns since the epoch.
    pub now_ns: std::cell::Cell<u64>,
    /// Shared data: key → (value, version).
    pub shared: RefCell<BTreeMap<String, (Vec<u8>, u32)>>,
    /// Every call, by method name, in order.
    pub calls: RefCell<Vec<&'static str>>,
    /// A method that fails, and how.
    pub failing: RefCell<Option<(&'static str, Status)>>,
}

impl RecordingHost {
    fn call(&self, name: &'static str) -> Result<(), Status> {
        self.calls.borrow_mut().push(name);
        match *self.failing.borrow() {
            Some((failing, status)) if failing == name => Err(status),
            _ => Ok(()),
        }
    }

    fn map(&self, map: HeaderMap) -> &RefCell<Vec<(String, Vec<u8>)>> {
        match map {
            HeaderMap::Request => &self.request_headers,
            HeaderMap::Response => &self.response_headers,
            HeaderMap::CallResponse => &self.call_response_headers,
        }
    }

    fn buffer(&self, which: Body) -> &RefCell<Vec<u8>> {
        match which {
            Body::Request => &self.request_body,
            Body::Response => &self.response_body,
            Body::CallResponse => &self.call_response_body,
        }
    }

    /// How many calls of each method were made.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for name in self.calls.borrow().iter() {
            *counts.entry(*name).or_insert(0) += 1;
        }
        counts
    }

    /// All calls made.
    pub fn total_calls(&self) -> usize {
        self.calls.borrow().len()
    }

    /// Forgets the calls made so far (to count one stage alone).
    pub fn reset_calls(&self) {
        self.calls.borrow_mut().clear();
    }

    /// A header's value as the host holds it now.
    pub fn header_value(&self, map: HeaderMap, name: &str) -> Option<String> {
        self.map(map)
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// A gauge's value, by stat name.
    pub fn gauge(&self, name: &str) -> Option<u64> {
        self.gauges
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// A histogram's samples, by stat name.
    pub fn samples(&self, name: &str) -> Option<Vec<u64>> {
        self.histograms
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// Every histogram sample recorded: (stat name, value).
    pub fn all_samples(&self) -> Vec<(String, u64)> {
        self.histograms
            .borrow()
            .iter()
            .flat_map(|(n, v)| v.iter().map(move |x| (n.clone(), *x)))
            .collect()
    }

    /// A counter's value, by stat name.
    pub fn counter(&self, name: &str) -> Option<i64> {
        self.counters
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

impl Host for RecordingHost {
    fn headers(&self, map: HeaderMap) -> Result<Headers, Status> {
        self.call("headers")?;
        Ok(Headers::from(self.map(map).borrow().clone()))
    }

    fn header(&self, map: HeaderMap, name: &str) -> Result<Option<Vec<u8>>, Status> {
        self.call("header")?;
        Ok(self
            .map(map)
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone()))
    }

    fn set_header(&self, map: HeaderMap, name: &str, value: Option<&str>) -> Result<(), Status> {
        self.call(if value.is_some() {
            "set_header"
        } else {
            "remove_header"
        })?;
        let mut headers = self.map(map).borrow_mut();
        headers.retain(|(n, _)| n != name);
        if let Some(value) = value {
            headers.push((name.to_string(), value.as_bytes().to_vec()));
        }
        Ok(())
    }

    fn body(&self, which: Body, start: usize, size: usize) -> Result<Option<Vec<u8>>, Status> {
        self.call("body")?;
        let body = self.buffer(which).borrow();
        let end = start.saturating_add(size).min(body.len());
        Ok(body.get(start.min(end)..end).map(<[u8]>::to_vec))
    }

    fn set_body(&self, which: Body, start: usize, size: usize, bytes: &[u8]) -> Result<(), Status> {
        self.call("set_body")?;
        let mut body = self.buffer(which).borrow_mut();
        let end = start.saturating_add(size).min(body.len());
        body.splice(start.min(end)..end, bytes.iter().copied());
        Ok(())
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
        self.call("property")?;
        Ok(self.properties.borrow().get(&path.join(".")).cloned())
    }

    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), Status> {
        self.call("set_property")?;
        self.properties
            .borrow_mut()
            .insert(path.join("."), value.to_vec());
        Ok(())
    }

    fn send_reply(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), Status> {
        self.call("send_reply")?;
        *self.reply.borrow_mut() = Some(SentReply {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        });
        Ok(())
    }

    fn call_foreign(&self, name: &str, args: Option<&[u8]>) -> Result<Option<Vec<u8>>, Status> {
        self.call("call_foreign")?;
        self.foreign_calls
            .borrow_mut()
            .push((name.to_string(), args.unwrap_or_default().to_vec()));
        Ok(None)
    }

    fn define_counter(&self, name: &str) -> Result<u32, Status> {
        self.call("define_counter")?;
        let mut counters = self.counters.borrow_mut();
        if let Some(id) = counters.iter().position(|(n, _)| n == name) {
            return Ok(id as u32);
        }
        counters.push((name.to_string(), 0));
        Ok((counters.len() - 1) as u32)
    }

    fn increment(&self, id: u32, amount: i64) -> Result<(), Status> {
        self.call("increment")?;
        // Envoy refuses an increment of 0.
        if amount == 0 {
            return Err(Status::BadArgument);
        }
        let mut counters = self.counters.borrow_mut();
        let counter = counters.get_mut(id as usize).ok_or(Status::NotFound)?;
        counter.1 += amount;
        Ok(())
    }

    fn define_gauge(&self, name: &str) -> Result<u32, Status> {
        self.call("define_gauge")?;
        let mut gauges = self.gauges.borrow_mut();
        if let Some(id) = gauges.iter().position(|(n, _)| n == name) {
            return Ok(id as u32);
        }
        gauges.push((name.to_string(), 0));
        Ok((gauges.len() - 1) as u32)
    }

    fn set_gauge(&self, id: u32, value: u64) -> Result<(), Status> {
        self.call("set_gauge")?;
        let mut gauges = self.gauges.borrow_mut();
        gauges.get_mut(id as usize).ok_or(Status::NotFound)?.1 = value;
        Ok(())
    }

    fn define_histogram(&self, name: &str) -> Result<u32, Status> {
        self.call("define_histogram")?;
        let mut histograms = self.histograms.borrow_mut();
        if let Some(id) = histograms.iter().position(|(n, _)| n == name) {
            return Ok(id as u32);
        }
        histograms.push((name.to_string(), Vec::new()));
        Ok((histograms.len() - 1) as u32)
    }

    fn record(&self, id: u32, value: u64) -> Result<(), Status> {
        self.call("record")?;
        let mut histograms = self.histograms.borrow_mut();
        histograms
            .get_mut(id as usize)
            .ok_or(Status::NotFound)?
            .1
            .push(value);
        Ok(())
    }

    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: std::time::Duration,
    ) -> Result<u32, Status> {
        self.call("dispatch")?;
        let mut dispatched = self.dispatched.borrow_mut();
        dispatched.push((
            cluster.to_string(),
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            timeout.as_millis() as u64,
        ));
        Ok(dispatched.len() as u32)
    }

    fn now_ns(&self) -> Result<u64, Status> {
        self.call("now_ns")?;
        Ok(self.now_ns.get())
    }

    fn shared(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Status> {
        self.call("shared")?;
        Ok(match self.shared.borrow().get(key) {
            Some((value, version)) => (Some(value.clone()), Some(*version)),
            None => (None, None),
        })
    }

    fn set_shared(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
        self.call("set_shared")?;
        let mut shared = self.shared.borrow_mut();
        let version = shared.get(key).map(|(_, v)| *v);
        if cas.is_some() && version.is_some() && cas != version {
            return Err(Status::CasMismatch);
        }
        let next = version.map_or(1, |v| v + 1);
        shared.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}

//! clv.v1.IngestService over the [`Ingest`] use-case.

use std::time::Duration;

use chrono::Utc;
use tonic::{Code, Request, Response, Status, Streaming};

use super::{
    convert,
    layers::detach::CallerGone,
    pb,
    status::{invalid_argument, Failure},
};
use crate::{
    domain::FieldViolation,
    metrics::{IngestOutcome, Metrics},
    service::{BatchRecorded, Ingest, Recorded},
};

pub struct IngestApi {
    ingest: Ingest,
    /// Counts transactions recorded, duplicate and rejected.
    metrics: Metrics,
    /// Longest wait for the next message of an import stream; `None`: none.
    stream_idle: Option<Duration>,
}

impl IngestApi {
    pub fn new(ingest: Ingest, metrics: Metrics) -> Self {
        Self {
            ingest,
            metrics,
            stream_idle: None,
        }
    }

    /// Ends import streams that send no message for `idle`.
    pub fn with_stream_idle(self, idle: Option<Duration>) -> Self {
        Self {
            stream_idle: idle,
            ..self
        }
    }

    /// Counts a call's or batch's transactions by outcome. Refusals for other reasons (an unavailable database) are not
    /// counted: the transactions were not judged.
    fn count(&self, transactions: usize, result: Result<BatchRecorded, Code>) {
        match result {
            Ok(r) => {
                self.metrics
                    .ingested(IngestOutcome::Recorded, r.recorded as u64);
                self.metrics
                    .ingested(IngestOutcome::Duplicate, r.duplicates as u64);
            }
            Err(Code::InvalidArgument | Code::AlreadyExists) => self
                .metrics
                .ingested(IngestOutcome::Rejected, transactions as u64),
            Err(_) => {}
        }
    }

    async fn record_one(&self, request: pb::RecordTransactionRequest) -> Result<Recorded, Status> {
        let pb::RecordTransactionRequest { transaction } = request;
        let transaction = required(&convert::entry_path(None), transaction)?;
        let transaction = convert::transaction(self.ingest.rules(), None, transaction, Utc::now())
            .map_err(|vs| invalid_argument(&vs))?;
        Ok(self.ingest.record(transaction).await?)
    }

    pub fn into_server(self) -> pb::ingest_service_server::IngestServiceServer<Self> {
        pb::ingest_service_server::IngestServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl pb::ingest_service_server::IngestService for IngestApi {
    async fn record_transaction(
        &self,
        request: Request<pb::RecordTransactionRequest>,
    ) -> Result<Response<pb::RecordTransactionResponse>, Status> {
        let recorded = self.record_one(request.into_inner()).await;
        self.count(
            1,
            recorded
                .as_ref()
                .map(|r| BatchRecorded {
                    recorded: usize::from(!r.duplicate),
                    duplicates: usize::from(r.duplicate),
                })
                .map_err(Status::code),
        );
        Ok(Response::new(pb::RecordTransactionResponse {
            duplicate: recorded?.duplicate,
        }))
    }

    async fn import_transactions(
        &self,
        request: Request<Streaming<pb::ImportTransactionsRequest>>,
    ) -> Result<Response<pb::ImportTransactionsResponse>, Status> {
        // A caller that left (cancelled, or its deadline passed) gets no
        // batch committed after it was told so.
        let caller = request
            .extensions()
            .get::<CallerGone>()
            .cloned()
            .unwrap_or_default();
        let mut stream = request.into_inner();
        let mut totals = pb::ImportTransactionsResponse::default();
        // The next message, when it arrived while the previous batch was
        // being recorded (see below).
        let mut prefetched: Option<Result<Option<Parsed>, Failure>> = None;
        let rules = self.ingest.rules();
        // Every error of the stream (a message that cannot be read, over the
        // size limit, an idle stream, a caller that left) says what the
        // batches before it committed, and names fields by the failed
        // batch's position.
        loop {
            let next = match prefetched.take() {
                // A caller that left gets no batch committed after it left,
                // even one that had already arrived.
                Some(_) if caller.token().is_cancelled() => {
                    Err(Failure::new(Code::Cancelled, "the caller left"))
                }
                Some(next) => next,
                None => next_message(&mut stream, self.stream_idle, &caller)
                    .await
                    .map(|m| m.map(|m| parse_batch(rules, m))),
            };
            let Some((sent, parsed)) = next.map_err(|f| f.in_import(&totals))? else {
                break;
            };
            let recorded = match parsed {
                Ok(parsed) => {
                    // While the database records this batch, the next
                    // message is read and checked: the two overlap instead
                    // of taking turns. A message read early is only parsed;
                    // nothing of it is stored before this batch commits.
                    let record = self.ingest.record_batch(parsed);
                    tokio::pin!(record);
                    loop {
                        if prefetched.is_some() {
                            break record.await;
                        }
                        tokio::select! {
                            biased;
                            recorded = &mut record => break recorded,
                            // Cancel-safe: a message is either returned or
                            // left in the stream.
                            message = stream.message() => {
                                prefetched = Some(
                                    message
                                        .map(|m| m.map(|m| parse_batch(rules, m)))
                                        .map_err(|e| Failure::new(e.code(), e.message())),
                                );
                            }
                        }
                    }
                    .map_err(Failure::from)
                }
                Err(f) => Err(f),
            };
            self.count(sent, recorded.as_ref().copied().map_err(Failure::code));
            let recorded = recorded.map_err(|f| f.in_import(&totals))?;
            totals.batches += 1;
            totals.recorded += recorded.recorded as u64;
            totals.duplicates += recorded.duplicates as u64;
        }
        Ok(Response::new(totals))
    }

    async fn record_feedback(
        &self,
        request: Request<pb::RecordFeedbackRequest>,
    ) -> Result<Response<pb::RecordFeedbackResponse>, Status> {
        let pb::RecordFeedbackRequest { feedback } = request.into_inner();
        let feedback = required("feedback", feedback)?;
        let feedback = self
            .ingest
            .rules()
            .parse_feedback(convert::unchecked_feedback(feedback), Utc::now())
            .map_err(|vs| invalid_argument(&convert::under("feedback", vs)))?;
        let recorded = self.ingest.record_feedback(&feedback).await?;
        Ok(Response::new(pb::RecordFeedbackResponse {
            duplicate: recorded.duplicate,
        }))
    }

    async fn record_acquisition_spend(
        &self,
        request: Request<pb::RecordAcquisitionSpendRequest>,
    ) -> Result<Response<pb::RecordAcquisitionSpendResponse>, Status> {
        let pb::RecordAcquisitionSpendRequest { spend } = request.into_inner();
        let spend = required("spend", spend)?;
        let spend = self
            .ingest
            .rules()
            .parse_spend(convert::unchecked_spend(spend), Utc::now())
            .map_err(|vs| invalid_argument(&convert::under("spend", vs)))?;
        let recorded = self.ingest.record_spend(&spend).await?;
        Ok(Response::new(pb::RecordAcquisitionSpendResponse {
            duplicate: recorded.duplicate,
        }))
    }

    async fn delete_customer(
        &self,
        request: Request<pb::DeleteCustomerRequest>,
    ) -> Result<Response<pb::DeleteCustomerResponse>, Status> {
        let pb::DeleteCustomerRequest { customer_id } = request.into_inner();
        let id = convert::stored_customer_id("customer_id", &customer_id)
            .map_err(|v| invalid_argument(&[v]))?;
        let deleted = self.ingest.delete_customer(&id).await?;
        Ok(Response::new(pb::DeleteCustomerResponse {
            transactions_deleted: deleted.transactions,
            existed: deleted.existed,
        }))
    }
}

/// A batch as read from the stream: how many transactions it sent, and
/// them parsed, or why the batch is refused.
type Parsed = (usize, Result<Vec<crate::domain::Transaction>, Failure>);

/// Checks one ImportTransactions message: its size, then every
/// transaction.
fn parse_batch(
    rules: &crate::domain::IngestRules,
    message: pb::ImportTransactionsRequest,
) -> Parsed {
    let pb::ImportTransactionsRequest { transactions } = message;
    let max = rules.max_batch;
    let sent = transactions.len();
    let parsed = if sent == 0 || sent > max {
        Err(Failure::invalid(vec![FieldViolation::new(
            "transactions",
            format!("a batch must hold 1 to {max} transactions, got {sent}"),
        )]))
    } else {
        convert::transactions(rules, transactions, Utc::now()).map_err(Failure::invalid)
    };
    (sent, parsed)
}

/// The stream's next message; DEADLINE_EXCEEDED saying what was committed
/// when none arrives within `idle`, CANCELLED when the caller has left.
/// (Giving up the wait loses nothing: no message was taken from the stream.)
async fn next_message<T>(
    stream: &mut Streaming<T>,
    idle: Option<Duration>,
    caller: &CallerGone,
) -> Result<Option<T>, Failure> {
    let idle_limit = async {
        match idle {
            Some(idle) => tokio::time::sleep(idle).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        () = caller.token().cancelled() => Err(Failure::new(Code::Cancelled, "the caller left")),
        message = stream.message() => message.map_err(|e| Failure::new(e.code(), e.message())),
        () = idle_limit => Err(Failure::new(
            Code::DeadlineExceeded,
            format!(
                "no message arrived for {} s, the stream idle limit (CLVD_STREAM_IDLE_SECONDS); \
                 send the rest in a new stream",
                idle.unwrap_or_default().as_secs_f64(),
            ),
        )),
    }
}

/// The request's one message field, which must be set.
fn required<T>(field: &str, value: Option<T>) -> Result<T, Status> {
    value.ok_or_else(|| invalid_argument(&[FieldViolation::new(field, "is required")]))
}

//! TikTok's envelope codes: what each one means for orderflow, per endpoint,
//! as TikTok's API reference lists them.
//!
//! Every code the official reference lists for an endpoint orderflow calls
//! is here with its official message and a [`Class`]: the endpoint's own
//! list first, then the codes common to every endpoint (the developer
//! guide's "Common errors"). The tables were copied from
//! `docs/tiktok-contract-notes.md` §2, which quotes
//! `lazykern/ecommerce-api-docs` (`data/raw/tiktok/api-reference/...`
//! `error_code_list` of each spec, and
//! `data/processed/tiktok/guides/developer-guide/tiktok-shop-api-concepts/common-errors.md`).
//! A code no table lists is [`Class::Rejected`]: TikTok's business answer,
//! surfaced with its message, never retried blindly. Codes the notes mark
//! "(verify)" because their meaning depends on state TikTok does not say
//! (e.g. 25001011, "a return request is already in process, or the order
//! has already been cancelled") are `Rejected` too: an operator, or the
//! next order snapshot, tells which; only an unambiguous "already shipped"
//! counts as done.

/// What a code means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// The effect already happened (e.g. "Package has been shipped"): an
    /// idempotent success for a re-issued call.
    AlreadyDone,
    /// Transient on TikTok's side ("System process error, please try again
    /// later"): retried with back-off.
    TryAgain,
    /// A business rule or a bad request: not retried; the step fails with
    /// TikTok's message for an operator.
    Rejected,
    /// Signature or token: refresh or re-authorize; retrying burns quota.
    Credentials,
    /// The app or shop setup (API version retired, scope not granted, IP
    /// not allowed): an alert for whoever configures orderflow.
    Configuration,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::AlreadyDone => "already_done",
            Class::TryAgain => "try_again",
            Class::Rejected => "rejected",
            Class::Credentials => "credentials",
            Class::Configuration => "configuration",
        }
    }
}

pub const OK: i64 = 0;
pub const TOO_MANY_REQUESTS: i64 = 36009002;
pub const INTERNAL_ERROR: i64 = 36009003;
pub const INVALID_REQUEST: i64 = 36009004;
pub const VERSION_INVALID: i64 = 36009014;
pub const INVALID_SIGN: i64 = 106001;
pub const TOKEN_EXPIRED: i64 = 105002;
/// "access token is invalid; detail:your token has been deauthorized"
/// (the creator authorization guide's example of a revoked token).
pub const ACCESS_TOKEN_INVALID: i64 = 105001;
pub const SCOPE_MISSING: i64 = 105005;
pub const TOKEN_WRONG_SHOP: i64 = 101000;
pub const CIPHER_MISSING: i64 = 106013;
pub const INVALID_TRACKING: i64 = 21011022;
pub const DUPLICATE_TRACKING: i64 = 21011025;
pub const CANCEL_REASON_UNKNOWN: i64 = 25001014;
pub const CANCEL_REASON_STATUS: i64 = 25001021;
pub const ORDER_SHIPPED_NO_CANCEL: i64 = 25001045;
pub const ORDER_FINISHED: i64 = 25001051;
pub const NO_PERMISSION_ORDER: i64 = 25020005;
pub const NOT_THIS_SELLER: i64 = 21008111;
/// Get Shipping Providers: "No Subscription without specified delivery option."
pub const DELIVERY_OPTION_NOT_SUBSCRIBED: i64 = 21008116;
/// Get Shipping Providers: the option is shipped by TikTok, no providers.
pub const DELIVERY_BY_TIKTOK: i64 = 21008117;
pub const REFRESH_TOKEN_EXPIRED: i64 = 36004001;
pub const AUTH_RECORD_MISSING: i64 = 36004005;

/// One listed code: `(code, class, official message)`.
pub type Entry = (i64, Class, &'static str);

use Class::*;

/// The codes of one endpoint, by the client's endpoint name.
pub fn table(endpoint: &str) -> &'static [Entry] {
    match endpoint {
        "mark_package_shipped" => MARK_PACKAGE_SHIPPED,
        "ship_package" | "batch_ship" => SHIP_PACKAGE,
        "shipping_document" => SHIPPING_DOCUMENT,
        "cancel_order" => CANCEL_ORDER,
        "order_detail" => ORDER_DETAIL,
        "search_orders" => SEARCH_ORDERS,
        "update_inventory" => UPDATE_INVENTORY,
        "search_products" => SEARCH_PRODUCTS,
        "get_product" => GET_PRODUCT,
        "shipping_providers" => SHIPPING_PROVIDERS,
        "search_cancellations" => SEARCH_CANCELLATIONS,
        "search_returns" => SEARCH_RETURNS,
        "approve_cancellation" => APPROVE_CANCELLATION,
        "reject_cancellation" => REJECT_CANCELLATION,
        _ => &[],
    }
}

/// The class and official message of `code` on `endpoint`, if TikTok
/// lists it there or among the common codes.
pub fn lookup(endpoint: &str, code: i64) -> Option<(Class, &'static str)> {
    table(endpoint)
        .iter()
        .chain(COMMON)
        .find(|e| e.0 == code)
        .map(|e| (e.1, e.2))
}

/// The class of `code` on `endpoint`; an unlisted code is `Rejected`.
pub fn class(endpoint: &str, code: i64) -> Class {
    lookup(endpoint, code).map_or(Class::Rejected, |(c, _)| c)
}

/// The official message of a code TikTok lists for `endpoint` (what the
/// simulator answers with).
pub fn message(endpoint: &str, code: i64) -> &'static str {
    lookup(endpoint, code).map_or("", |(_, m)| m)
}

/// The codes `endpoint` lists as "already done".
pub fn already_done(endpoint: &str) -> impl Iterator<Item = i64> {
    table(endpoint)
        .iter()
        .filter(|e| e.1 == Class::AlreadyDone)
        .map(|e| e.0)
}

const COMMON: &[Entry] = &[
    // Not in the common-errors guide, but listed by nearly every endpoint:
    // also retried for the ones whose own list lacks it.
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
    (36009002, TryAgain, "Too many requests. You've made too many requests in a short period of time."),
    (36009007, TryAgain, "Request timeout. The request to the endpoint timed out."),
    (36009009, Configuration, "Invalid path. The specified path does not match any available endpoint."),
    (36009010, Configuration, "Invalid method. The HTTP method used is not supported by this endpoint."),
    (36009021, Rejected, "Invalid file size. The uploaded file size exceeds the maximum limit."),
    (36009022, Configuration, "Invalid request format. The request body format must be application/json for structured data or multipart/form-data for binary files."),
    (36009023, Configuration, "Invalid request format. The value of the content-type header must be multipart/form-data."),
    (101000, Credentials, "Invalid query or header. The category_asset_cipher query parameter or x-tts-access-token header is invalid."),
    (105005, Configuration, "Access denied. The app is not authorized to access the endpoint because the access scopes granted for the app or the access token do not contain the required access scope for the endpoint."),
    (36009033, Configuration, "Access denied. Your IP address is not in the IP allow list configured for this app."),
    (105001, Credentials, "Access token is invalid: the authorization was removed (\"your token has been deauthorized\"); the seller must authorize again."),
    (105002, Credentials, "Expired credentials. The access_token or x-tts-access-token header has expired."),
    (106001, Credentials, "Invalid credentials. The sign query parameter is invalid."),
    (36009004, Credentials, "Missing credentials. The request does not include a required signature in the query."),
    (106013, Configuration, "Missing identifier. The shop_cipher query parameter is required to identify the target shop."),
    (36009014, Configuration, "The version name is invalid, please check and retry."),
];

const MARK_PACKAGE_SHIPPED: &[Entry] = &[
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
    (11001027, TryAgain, "System timeout. If this error persists, please contact the platform for assistance."),
    (11001031, TryAgain, "System process error, please try again later."),
    (11005004, Configuration, "warehouse not exist"),
    (11005010, TryAgain, "get lead time from card service error"),
    (11006005, TryAgain, "System process error, please try again later."),
    (11006026, TryAgain, "System process error, please try again later."),
    (11021009, Rejected, "No available shipping services for this request. Please modify the package weight or check the recipient address. If the error persists, please contact the platform for assistance."),
    (11028006, Rejected, "This tracking number cannot be matched to any carrier, please check the tracking number and upload again."),
    (11050001, Rejected, "invalid param"),
    (21001001, Rejected, "Invalid parameters. Please ensure you are passing the correct request parameter(s)."),
    (21001008, TryAgain, "System process error, please try again later."),
    (21001011, TryAgain, "System process error, please try again later."),
    (21001029, TryAgain, "rpc logistics_logistics_service_4b failed"),
    (21001043, TryAgain, "System process error, please try again later."),
    (21001055, TryAgain, "System process error, please try again later."),
    (21004012, Rejected, "Tracking number has special characters, verify failed."),
    (21004015, Rejected, "Tracking number mismatch provider."),
    (21004016, Rejected, "Tracking number verify, not avalible logsitics service or provider"),
    (21004019, Rejected, "Need invoice uploaded for all order before rts."),
    (21004020, Rejected, "Fulfillment Invoice status is not success, can not rts pkg."),
    (21008025, Rejected, "Seller cannot operate orders which are fulfilled by platform"),
    (21008042, Rejected, "seller already print shipping label"),
    (21008044, Rejected, "SellerFulfillUnitInReverseCannotOperate"),
    (21008099, AlreadyDone, "Package has been shipped. Please not ship the package again."),
    (21008106, Configuration, "This interface cannot be used in this region."),
    (21008300, TryAgain, "System process error, please try again later."),
    (21011003, Rejected, "fulfill_unit action not allowed"),
    (21011004, Rejected, "This API cannot be used to update package shipping information for packages that are not shipped by sellers."),
    (21011006, AlreadyDone, "These orders are already shipped."),
    (21011007, Rejected, "Package item has after-sale request, please process the after-sale request first."),
    (21011012, Rejected, "not match trade rule"),
    (21011013, Rejected, "not match logistics rule"),
    (21011020, AlreadyDone, "These orders are already shipped."),
    (21011022, Rejected, "Invalid tracking number or provider ID. Please double check and try again."),
    (21011025, Rejected, "Duplicate tracking number."),
    (21011026, Rejected, "fulfillment tracking no used times over limit"),
    (21011029, Rejected, "order does not belong to fulfill unit"),
    (21011030, Rejected, "fulfillment not allow update tracking no"),
    (21011033, Rejected, "order already combined"),
    (21011036, Rejected, "split same sku in Multi Package not allow."),
    (21011046, Rejected, "Order has combine, not allow split order"),
    (21011048, Rejected, "There are multiple packages that can be shipped, please specify the order line that needs to be shipped."),
    (21011050, Rejected, "The tracking number can only be updated within a certain number of hours."),
    (21011051, Rejected, "The tracking number can only be updated once."),
    (21021010, Rejected, "Failed to ship. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (21022025, Rejected, "A shipping label has already been purchased."),
    (21022026, TryAgain, "Cannot purchase shipping label, please try again later."),
    (21022028, Rejected, "split pkg fail."),
    (21022029, TryAgain, "System process error, please try again later."),
    (21022030, TryAgain, "System process error, please try again later."),
    (21032001, Rejected, "fulfill unit status not allow to update pkg attr"),
    (21034006, TryAgain, "decision route occurs error"),
    (21034012, Rejected, "tracking no has been used"),
    (21042056, AlreadyDone, "These orders are already shipped."),
    (21042057, Rejected, "These orders are not in the Awaiting shipment status. Couldn't create labels for them."),
];

/// Get Package Shipping Document (fulfillment 202309), in the reference's
/// order, messages as TikTok spells them.
const SHIPPING_DOCUMENT: &[Entry] = &[
    (11006010, TryAgain, "Internal package status error, please try again later."),
    (11034002, Rejected, "This API is only applicable to TikTok Shipping orders. For seller shipping, please obtain the shipping label offline and upload it to TikTok Shop via API or Seller Center."),
    (11034009, Rejected, "Warehouse does not exist."),
    (11034023, TryAgain, "Shipping document generation timeout error, please try again later."),
    (11034025, TryAgain, "Internal package tag error, pleaser try again later."),
    (11034037, TryAgain, "The shipping document is still being generated by the logistics provider, please try again later."),
    (21008017, Rejected, "This API is only applicable to TikTok Shipping orders. For seller shipping, please obtain the shipping label offline and upload it to TikTok Shop via API or Seller Center."),
    (21008043, Rejected, "This package is fulfilled by TikTok.  Shipping documents cannot be printed."),
    (21008109, Rejected, "Unable to retrieve shipping information, please double check the order status."),
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
    (21021010, Rejected, "Package item has after-sale request, please process the after-sale request first."),
    (21023022, TryAgain, "Unknown label print timeout error. If the error persists, please contact the platform for assistance."),
    (21023034, TryAgain, "Internal package update error, please try again later."),
    (21023035, Rejected, "Please arrange shipment before retrieving the shipping document."),
    (21023046, Rejected, "Package has already been shipped."),
    (21023059, Rejected, "Package has already been cancelled."),
    (21042102, Rejected, "Documents couldn't be printed after the package has been pickup."),
    (21042104, Rejected, "Documents couldn't be printed before shipped.Please check shipping is arranged and try again."),
];

const SHIP_PACKAGE: &[Entry] = &[
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
    (11001002, Rejected, "invalid param."),
    (11001031, TryAgain, "System process error, please try again later."),
    (11006013, Rejected, "Failed to ship package. Products under the Phones & Tablets category cannot be shipped together with other items in the same package. Please split the order. "),
    (11006014, Rejected, "Failed to ship package. If you are shipping multiple products under the Phones & Tablets category, they must be shipped in individual packages. Please split the order to continue."),
    (11006021, AlreadyDone, "Package has been shipped. Please not ship the package again."),
    (11021009, Rejected, "No available shipping services for this request. Please modify the package weight or check the recipient address. If the error persists, please contact the platform for assistance."),
    (11021010, Rejected, "The shipment failed due to an invalid postal code. Please ask the buyer to edit the address. If the address cannot be changed, you may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021011, Rejected, "Fail to ship package because the product name is invalid. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021012, Rejected, "illegal address"),
    (11021013, Rejected, "The shipment failed because the delivery address is too long. Please ask the buyer to shorten the address. If the address cannot be changed, you may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021014, Rejected, "product oversize"),
    (11021015, Rejected, "Fail to ship package because the package is overweight. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021016, Rejected, "Fail to ship package because the weight of the SKU exceeds the allowed limit. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021017, Rejected, "Fail to ship package because the SKU dimensions exceed the allowed limits. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021018, Rejected, "Fail to ship package because the number of items in the package exceeds the allowed limit."),
    (11021019, Rejected, "Fail to ship package because the package dimensions exceed the allowed limits. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021020, Rejected, "Fail to ship package because the package's circumference exceeds the allowed limit. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021021, Rejected, "Fail to ship package because the SKU name is invalid. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021022, Rejected, "Fail to ship package because the longest dimension of the package exceeds the allowed limit. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021023, Rejected, "Fail to ship package because the buyer and/or seller addresses are invalid. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021024, Rejected, "Fail to ship package because the buyer recipient address is invalid. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11021025, Rejected, "Fail to ship package because the seller shipping address is invalid. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (11028006, Rejected, "This tracking number cannot be matched to any carrier, please check the tracking number and upload again."),
    (11050001, Rejected, "invalid param"),
    (21001001, Rejected, "Invalid parameters. Please ensure you are passing the correct request parameter(s)."),
    (21001003, TryAgain, "System timeout. If the error persists, please contact the platform for assistance."),
    (21001008, TryAgain, "System process error, please try again later."),
    (21001011, TryAgain, "System process error, please try again later."),
    (21004006, Rejected, "Failed to ship. Please ensure an invoice is uploaded before shipping."),
    (21004017, Rejected, "ON DEMAND RTS NOT IN PICKUP TIME."),
    (21004019, Rejected, "Need invoice uploaded for all order before rts."),
    (21004020, Rejected, "Fulfillment Invoice status is not success, can not rts pkg."),
    (21004024, Rejected, "ship order failed due to platform limitations."),
    (21008025, Rejected, "Seller cannot operate orders which are fulfilled by platform"),
    (21008044, Rejected, "Package item has after-sale request, please process the after-sale request first."),
    (21008099, AlreadyDone, "Package has been shipped. Please not ship the package again."),
    (21011003, Rejected, "fulfill_unit action not allowed"),
    (21011007, Rejected, "Package item has after-sale request, please process the after-sale request first."),
    (21011008, Rejected, "Package is not complete. If the error persists, please contact the platform for assistance."),
    (21011020, AlreadyDone, "These orders are already shipped."),
    (21011022, Rejected, "Invalid tracking number or provider ID. Please double check and try again."),
    (21011025, Rejected, "Duplicate tracking number. "),
    (21011026, Rejected, "fulfillment tracking no used times over limit."),
    (21011027, AlreadyDone, "Package has already been delivered."),
    (21011028, Rejected, "The package does not belong to the current shop.   "),
    (21011030, Rejected, "fulfillment not allow update tracking no."),
    (21011040, AlreadyDone, "Package has already been shipped."),
    (21011041, Rejected, "Cannot complete the operation when order is cancelled. "),
    (21011050, Rejected, "The tracking number can only be updated within a certain number of hours."),
    (21011051, Rejected, "The tracking number can only be updated once."),
    (21011053, Rejected, "Fail to ship package because the shipment time is outside of the pick-up time slot."),
    (21011054, Rejected, "No available shipping services for this request due to missing pick-up time slot. Please contact customer service for assistance."),
    (21014009, Rejected, "Failed to ship. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (21021010, Rejected, "Failed to ship. You may cancel the order without penalty by selecting the following reason: Unable to deliver to buyer address."),
    (21022029, TryAgain, "System process error, please try again later."),
    (21022032, Rejected, "match provider failed."),
    (21034012, Rejected, "tracking no has been used."),
    (21042001, TryAgain, "System process error, please try again later."),
    (21042067, Rejected, "The logistics service provider couldn't process your order.\t"),
    (21042076, TryAgain, "System process error, please try again later."),
];

const CANCEL_ORDER: &[Entry] = &[
    (25001001, Rejected, "An invalid request parameter was passed. Please check that you have the correct parameter type(s) and format."),
    (25001011, Rejected, "A return request is already in process, or the order has already been cancelled."),
    (25001014, Rejected, "Unknown return reason. Please ensure you are passing a valid return reason."),
    (25001015, Rejected, "The provided return reason cannot be used by the seller. Please select a valid return reason and try again."),
    (25001020, Rejected, "The provided return reason is currently offline. Please select a different return reason."),
    (25001021, Rejected, "Reason not match order status"),
    (25001028, TryAgain, "reverse lock failed"),
    (25001045, Rejected, "The order has already been shipped and we are unable to cancel shipment with the courier."),
    (25001046, Rejected, "Return request has failed due to an interception by TikTok risk control."),
    (25001051, Rejected, "Not allowed to return or cancel since order is completed or cancelled"),
    (25005010, Rejected, "Unable to cancel individual line items within this request."),
    (25005011, Rejected, "The requested line item(s) for return or refund exceeds the allowable limit."),
    (25020005, Rejected, "No permission to process this order"),
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
];

const ORDER_DETAIL: &[Entry] = &[
    (10002014, TryAgain, "Failed to get orders, If multiple retry have failed, please contact the platform for assistance"),
    (10002015, TryAgain, "Failed to get orders, If multiple retry have failed, please contact the platform for assistance"),
    (10006402, Configuration, "permission denied"),
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
    (10037002, TryAgain, "Failed to get orders, If multiple retry have failed, please contact the platform for assistance"),
    (10037003, TryAgain, "Failed to get orders, If multiple retry have failed, please contact the platform for assistance"),
    (10037004, TryAgain, "Failed to get orders, If multiple retry have failed, please contact the platform for assistance"),
    (21008111, Rejected, "The order or package does not belong to the current seller."),
];

const SEARCH_ORDERS: &[Entry] = &[
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
];

/// Search Products (`products/search-products.spec.json`, 202502).
const SEARCH_PRODUCTS: &[Entry] = &[
    (12019027, Rejected, "The maximum count of “seller_skus” in the search filter is 10."),
    (12019087, Rejected, "The number of SKU IDs exceeds the limit of 10"),
    (12019108, Rejected, "page number is invalid"),
    (12019109, Rejected, "page size is invalid"),
    (12019118, Rejected, "search create time invalid"),
    (12019119, Rejected, "search update time invalid"),
    (12052180, Rejected, "The total number of search results can not exceed 10000."),
    (12052700, Configuration, "The seller is inactive."),
    (12052704, Configuration, "seller id not exist"),
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
    (12052910, Rejected, "Invalid input parameters. Refer to the API documentation for details."),
];

/// Get Product (`products/get-product.spec.json`, 202309).
const GET_PRODUCT: &[Entry] = &[
    (12019150, Rejected, "The product ID does not exist."),
    (12052032, Rejected, "The product does not exist"),
    (12052048, Rejected, "You cannot edit the specified product(s) as it isn't listed in your account or shop. "),
    (12052260, Rejected, "The product ID does not exist"),
    (12052547, Rejected, "There is no version of this product that is under review. Please obtain the online version."),
    (12052704, Configuration, "seller id not exist"),
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
    (12052901, Rejected, "The product in its current status is not available for this operation. Change the product status and try again."),
];

const UPDATE_INVENTORY: &[Entry] = &[
    (12019022, Rejected, "SKU must contain a valid warehouse."),
    (12019024, Rejected, "stock count is invalid"),
    (12019028, Rejected, "Multiple warehouses detected. Include all warehouse IDs and the corresponding details and try again."),
    (12052031, Rejected, "Invalid product ID(s) found"),
    (12052032, Rejected, "The product does not exist"),
    (12052036, Rejected, "The SKU ID is necessary"),
    (12052037, Rejected, "Couldn't update inventory. Possible causes:<br>- Inventory is automatically allocated and cannot be modified manually<br>- Warehouse IDs provided are incorrect<br>- Missing warehouse IDs (all warehouses that stock the product must be included)"),
    (12052048, Rejected, "You cannot edit the specified product(s) as it isn't listed in your account or shop. "),
    (12052050, Rejected, "A single product cannot have more than 100 different SKUs"),
    (12052055, Rejected, "The SKU inventory quantity for the warehouse must be within allowed limits."),
    (12052094, Configuration, "No multiple warehouse permission"),
    (12052096, Rejected, "Unable to update the price for SKUs with no warehouse. Assign a warehouse and try again."),
    (12052097, Rejected, "The warehouse does not exist"),
    (12052115, Configuration, "seller has no warehouse"),
    (12052141, Configuration, "please edit stock from global"),
    (12052160, Rejected, "sku count must be one and disable variables"),
    (12052207, Rejected, "receipt brand not support warehouse"),
    (12052260, Rejected, "The product ID does not exist"),
    (12052308, Rejected, "There's an ongoing appeal. If you wish to edit product details, please revoke the appeal first."),
    (12052364, Rejected, "The warehouse is unavailable because this product cannot be shipped to the target market from this warehouse."),
    (12052371, Rejected, "Auction product is bidding when it is not supported to change product info"),
    (12052393, Rejected, "Product locked for Promotion and stock can't be updated below current stock"),
    (12052403, Rejected, "The warehouse does not support fulfillment for the current shop."),
    (12052465, Rejected, "warehouse is unavailable for eu gpr product"),
    (12052530, Configuration, "The warehouse ' {{warehouse ID}} ' does not belong to this shop/seller."),
    (12052531, Configuration, "The warehouse is disabled."),
    (12052532, Configuration, "the warehouse not delivery warehouse"),
    (12052533, Rejected, "Removal, addition, and change of warehouses are not permitted. Please specify the original warehouses for the SKUs."),
    (12052535, Configuration, "Couldn't publish this product as you haven't set the return warehouse for your shop. Add the return warehouse information on TikTok Shop Seller Center first and try again."),
    (12052553, Rejected, "Sku id duplicate"),
    (12052556, Rejected, "The SKU id not exist."),
    (12052700, Configuration, "The seller is inactive."),
    (12052703, Configuration, "Invalid seller tax number"),
    (12052704, Configuration, "seller id not exist"),
    (12052849, Configuration, "You don't have the permission to operate combo."),
    (12052850, Rejected, "The stock of combo does not support being edited."),
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
    (12052901, Rejected, "The product in its current status is not available for this operation. Change the product status and try again."),
    (12052902, Rejected, "The SKU list is empty. Either omit the list entirely, or provide all required details."),
    (12052921, Rejected, "Couldn't edit the inventory quantity because this product shares the inventory with the source shop"),
    (12052990, Rejected, "The check failed."),
];

const SHIPPING_PROVIDERS: &[Entry] = &[
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
    (21008116, Configuration, "No Subscription without specified delivery option."),
    (21008117, Rejected, "The delivery of the specified delivery_option_id is fulfilled by TikTok. No shipping provider will be returned."),
];

const SEARCH_CANCELLATIONS: &[Entry] = &[
    (25001001, Rejected, "An invalid request parameter was passed. Please check that you have the correct parameter type(s) and format."),
    (25020005, Rejected, "No permission to process this order"),
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
];

const SEARCH_RETURNS: &[Entry] = &[
    (25001001, Rejected, "An invalid request parameter was passed. Please check that you have the correct parameter type(s) and format."),
    (25020005, Rejected, "No permission to process this order"),
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
];

const APPROVE_CANCELLATION: &[Entry] = &[
    (11050001, Rejected, "invalid param"),
    (25001001, Rejected, "An invalid request parameter was passed. Please check that you have the correct parameter type(s) and format."),
    (25001003, Rejected, "Invalid order status."),
    (25001028, TryAgain, "reverse lock failed"),
    (25001045, Rejected, "The order has already been shipped and we are unable to cancel shipment with the courier."),
    (25001058, TryAgain, "reverse downstream data load error"),
    (25007002, TryAgain, "db access error"),
    (25007006, Rejected, "Order not found."),
    (25011012, Rejected, "reverse status cannot approve application"),
    (25020003, Rejected, "decision not match reverse status"),
    (25020004, Rejected, "decision not match reverse type"),
    (25020005, Rejected, "No permission to process this order"),
    (25020009, Rejected, "reverse already cancelled"),
    (36009003, TryAgain, "Internal error. Please try again. If the issue persists after multiple attempts, please contact platform support."),
];

const REJECT_CANCELLATION: &[Entry] = &[
    (11050001, Rejected, "invalid param"),
    (25001001, Rejected, "An invalid request parameter was passed. Please check that you have the correct parameter type(s) and format."),
    (25001003, Rejected, "Invalid order status."),
    (25001014, Rejected, "Unknown return reason. Please ensure you are passing a valid return reason."),
    (25001016, Rejected, "reverse reason not match action type"),
    (25001020, Rejected, "The provided return reason is currently offline. Please select a different return reason."),
    (25001028, TryAgain, "reverse lock failed"),
    (25001057, Rejected, "reverse reason not match reason type"),
    (25001058, TryAgain, "reverse downstream data load error"),
    (25007006, Rejected, "Order not found."),
    (25011011, Rejected, "reverse status cannot reject application"),
    (25020003, Rejected, "decision not match reverse status"),
    (25020004, Rejected, "decision not match reverse type"),
    (25020005, Rejected, "No permission to process this order"),
    (25020010, Rejected, "Aftersales has been approved and cannot be rejected."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ship_endpoints_know_every_official_already_shipped_code() {
        let mark: Vec<i64> = already_done("mark_package_shipped").collect();
        assert_eq!(mark, [21008099, 21011006, 21011020, 21042056]);
        let ship: Vec<i64> = already_done("ship_package").collect();
        assert_eq!(ship, [11006021, 21008099, 21011020, 21011027, 21011040]);
    }

    #[test]
    fn endpoint_codes_come_before_common_ones_and_unlisted_ones_are_rejections() {
        assert_eq!(class("ship_package", 21001008), Class::TryAgain);
        assert_eq!(class("order_detail", 10037004), Class::TryAgain);
        assert_eq!(class("cancel_order", INTERNAL_ERROR), Class::TryAgain);
        assert_eq!(class("cancel_order", VERSION_INVALID), Class::Configuration);
        assert_eq!(class("search_orders", SCOPE_MISSING), Class::Configuration);
        assert_eq!(class("search_orders", INVALID_SIGN), Class::Credentials);
        assert_eq!(class("cancel_order", CANCEL_REASON_STATUS), Class::Rejected);
        assert_eq!(class("ship_package", 99999999), Class::Rejected);
        assert_eq!(
            message("cancel_order", CANCEL_REASON_STATUS),
            "Reason not match order status"
        );
    }

    #[test]
    fn no_table_lists_a_code_twice() {
        for t in [
            COMMON,
            MARK_PACKAGE_SHIPPED,
            SHIP_PACKAGE,
            CANCEL_ORDER,
            ORDER_DETAIL,
            SEARCH_ORDERS,
            UPDATE_INVENTORY,
            SHIPPING_PROVIDERS,
            SEARCH_CANCELLATIONS,
            SEARCH_RETURNS,
            APPROVE_CANCELLATION,
            REJECT_CANCELLATION,
        ] {
            let mut seen = std::collections::HashSet::new();
            for e in t {
                assert!(seen.insert(e.0), "{} twice", e.0);
            }
        }
    }
}
